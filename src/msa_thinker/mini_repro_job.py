"""One seed process of `msa-thinker mini-repro` (started by mini_repro.run_jobs; not a user command).

``python -m msa_thinker.mini_repro_job OUT SPEC``: runs the stages of one job (SPEC, a JSON object: its kind, seed,
threads and candidate) of the run in OUT, with OUT's resolved recipe. The parent set the thread count in the
environment before this interpreter started; here torch is pinned to it and, when the recipe asks, to deterministic
algorithms. Exit status 1 when a stage fails (its log names the error).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from msa_core import artifacts


def main(argv: list[str]) -> int:
    from rich.console import Console

    from msa_thinker.mini_repro import MiniPaths, job_plan, load_mini_recipe
    from msa_thinker.stage_driver import StageContext, StageFailed, offline_cpu_environment, run_stages

    out, spec = Path(argv[0]), json.loads(argv[1])
    recipe = load_mini_recipe(out / artifacts.MINI_REPRO_RECIPE)
    offline_cpu_environment(spec["threads"])
    import torch

    torch.set_num_threads(spec["threads"])
    if recipe.deterministic:
        # warn_only: the CPU ops this model uses are deterministic; a warning names any that is not.
        torch.use_deterministic_algorithms(True, warn_only=True)
    paths = MiniPaths(out)
    try:
        run_stages(
            job_plan(paths, recipe, spec),
            out,
            lambda log, log_path: StageContext(paths, recipe, log, log_path),
            console=Console(file=sys.stdout, width=160),
        )
    except StageFailed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
