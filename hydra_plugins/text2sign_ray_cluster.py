"""hydra/launcher=ray_cluster (conf/hydra/launcher/ray_cluster.yaml): hydra-ray-launcher's
launcher, for a running Ray cluster, with the sweep's absolute path given to its jobs. Hydra
takes launchers only from the hydra_plugins package.

A Ray task runs in the folder its node's `ray start` ran in, not in the command's, so with a
relative `hydra.sweep.dir` (the default, outputs/multirun/...) the jobs would write their
directories there, out of the sweep's sight. hydra-ray-launcher is the `ray` extra (pip install
-e ".[ray]"); it is imported when the launcher is made, so that Hydra's scan of its plugins
imports this module without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class RayClusterLauncher(Launcher):
    def __init__(self, ray: DictConfig) -> None:
        try:
            from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher
        except ImportError as err:
            raise ImportError(f"hydra/launcher=ray_cluster needs hydra-ray-launcher ({err}): "
                              "pip install -e \".[ray]\"") from err
        self.ray_launcher = RayLauncher(ray)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        self.ray_launcher.setup(hydra_context=hydra_context, task_function=task_function,
                                config=config)

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        quoted = str(self.sweep_dir).replace("\\", "\\\\").replace("'", "\\'")
        here = f"hydra.sweep.dir='{quoted}'"  # a Hydra override, the last of its key: it wins
        return self.ray_launcher.launch([[*overrides, here] for overrides in job_overrides],
                                        initial_job_idx)
