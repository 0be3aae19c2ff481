"""Entry point: importing the command modules registers their commands on the shared app."""

import cot_distill.generate_cli
import cot_distill.publish_cli  # noqa: F401  (registers export/push/serve/doctor)
from cot_distill.app import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
