"""Run by Python at start-up in the LLaMA-Factory processes ``msa-rl sft`` launches (this folder is put on
PYTHONPATH, so torchrun's workers get it too): applies the student family's LLaMA-Factory fix, the module named by
``MSA_THINKER_LF_PATCH`` (a ``ModelFamily.lf_patch`` of msa_omni.families). Nothing happens without it."""

import importlib
import os

_patch = os.environ.get("MSA_THINKER_LF_PATCH")
if _patch:
    importlib.import_module(_patch).apply()
