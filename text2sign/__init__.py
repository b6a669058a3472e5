"""Ablation studies of a text-to-sign video diffusion model (README.md).

`from text2sign import AblationRunner` records a training loop of your own as a run of the
framework (text2sign/recorder.py). It is imported on first use: `import text2sign` alone
imports neither torch nor Lightning.
"""

__all__ = ["AblationRunner"]


def __getattr__(name: str):
    if name == "AblationRunner":
        from text2sign.recorder import AblationRunner

        return AblationRunner
    raise AttributeError(f"module 'text2sign' has no attribute {name!r}")
