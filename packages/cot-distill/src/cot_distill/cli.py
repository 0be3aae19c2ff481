"""Entry point: importing the command modules registers their commands on the shared app."""

from cot_distill.app import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
