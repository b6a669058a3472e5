"""Every config option composes; bad overrides fail early with a message naming the key."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import CONF, TINY, compose_config, compose_hydra, compose_run
from entry_points import command, train
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from text2sign.data.clips import DataError
from text2sign.run.preflight import (
    ConfigError,
    Preflight,
    PreflightFailed,
    check_config,
)
from text2sign.rundir.factors import ablation_keys, run_factors
from text2sign.rundir.identity import flatten
from text2sign.rundir.lock import hold_run_directory
from text2sign.rundir.record import plain


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("scale", group_options("scale"))
@pytest.mark.parametrize("text_encoder", group_options("text_encoder"))
@pytest.mark.parametrize("ema", ["true", "false"])
def test_every_ablation_composes(tmp_path, scale, text_encoder, ema):
    cfg = compose_config([f"scale={scale}", f"text_encoder={text_encoder}", f"ema={ema}"],
                         tmp_path)
    OmegaConf.resolve(cfg)  # every interpolation resolves
    assert cfg.ema is (ema == "true")
    assert cfg.callbacks.ema.enabled is cfg.ema
    assert cfg.text_encoder.trainable is (text_encoder == "finetuned")
    assert cfg.lr_scheduler.num_training_steps == cfg.trainer.max_steps


def test_scales_set_the_documented_sizes(tmp_path):
    full = compose_config(["scale=full"], tmp_path)
    assert (full.model.denoiser.base_channels, list(full.model.denoiser.channel_mults)) == (96, [1, 2, 4])
    assert full.model.denoiser.num_res_blocks == 2
    assert (full.data.image_size, full.data.num_frames, full.data.batch_size) == (64, 16, 2)
    assert full.optimizer.lr == pytest.approx(5e-5) and full.callbacks.ema.decay == 0.9999
    assert full.trainer.gradient_clip_val == 1.0
    small = compose_config(["scale=small", "data.num_frames=6"], tmp_path)
    # the model generates the clips the data holds
    resolved = OmegaConf.to_container(small, resolve=True)
    assert resolved["model"]["num_frames"] == 6 and resolved["model"]["image_size"] == 16


def test_any_documented_key_can_be_overridden(tmp_path):
    cfg = compose_config([
        "seed=3", "ema=false", "optimizer.lr=1e-4", "trainer.max_steps=7",
        "data.num_frames=12", "data.image_size=32", "text_encoder=finetuned",
        "text_encoder.name=/some/local/model", "text_encoder.trainable_layers=2",
    ], tmp_path)
    assert (cfg.seed, cfg.ema, cfg.optimizer.lr, cfg.trainer.max_steps) == (3, False, 1e-4, 7)
    assert (cfg.data.num_frames, cfg.data.image_size) == (12, 32)
    assert cfg.model.num_frames == 12
    assert cfg.text_encoder.name == "/some/local/model" and cfg.text_encoder.trainable_layers == 2


def test_experiment_preset_sweeps_the_grid_over_seeds(tmp_path):
    preset = compose_hydra(["experiment=ablation_seeds"])
    params = preset.hydra.sweeper.params
    assert params == {"text_encoder": "frozen,finetuned", "ema": "true,false", "seed": "0,1,2"}
    # it launches the seeds and sets nothing else: its runs are the plain sweep's runs
    assert plain(compose_config(["experiment=ablation_seeds"], tmp_path)) == plain(
        compose_config([], tmp_path))


# the original study's arms: each differs from the baseline in one factor only
ARMS = {"baseline": ("frozen", True), "text_finetuned": ("finetuned", True),
        "no_ema": ("frozen", False)}


def test_named_ablations_set_their_arm_and_the_command_line_wins(tmp_path):
    for arm, (text_encoder, ema) in ARMS.items():
        cfg, runtime = compose_run([f"ablation={arm}", "scale=tiny", "seed=3"], tmp_path)
        assert (runtime.choices["text_encoder"], cfg.ema, cfg.seed) == (text_encoder, ema, 3)
        assert cfg.callbacks.ema.enabled is ema and cfg.data.image_size == 8  # scale=tiny too
        factors = run_factors(runtime, plain(cfg))
        assert (factors["ablation"], factors["text_encoder"], factors["ema"]) == (
            arm, text_encoder, ema)
    # an explicit override wins over the ablation's setting, a group's as a key's
    cfg, runtime = compose_run(["ablation=text_finetuned", "text_encoder=frozen", "ema=false"],
                               tmp_path)
    assert runtime.choices["text_encoder"] == "frozen" and not cfg.text_encoder.trainable
    assert cfg.ema is False
    assert ablation_keys("text_finetuned") == ("text_encoder", "ema")
    assert compose_run([], tmp_path)[1].choices.get("ablation") is None  # no ablation: none
    assert ablation_keys(None) == ()


def test_one_factor_at_a_time(tmp_path):
    """text_finetuned and no_ema each differ from the baseline in their own factor only."""
    configs = {arm: flatten(plain(compose_config([f"ablation={arm}"], tmp_path)))
               for arm in ARMS}
    assert configs["baseline"] == flatten(plain(compose_config([], tmp_path)))  # the defaults
    for arm, factor in (("text_finetuned", "text_encoder"), ("no_ema", "ema")):
        differ = {key.split(".")[0] for key in configs[arm]
                  if configs[arm][key] != configs["baseline"].get(key)}
        assert differ == ({factor, "callbacks"} if factor == "ema" else {factor}), differ


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("ema=maybe", ["ema", "maybe", "bool"]),
        ("optimizer.lr=abc", ["optimizer.lr", "abc", "Float"]),
        ("scale=huge", ["scale/huge", "full", "small"]),
        ("text_encoder=bogus", ["text_encoder/bogus", "finetuned", "frozen"]),
        ("model.diffusion.prediction_type=x0", ["prediction_type", "epsilon", "v_prediction"]),
        ("trainer.max_step=5", ["trainer.max_step", "not in"]),
        ("foo=1", ["foo"]),
        # typed by the constructors' signatures (text2sign/config.py restates no key)
        ("model.denoiser.base_channels=abc", ["model.denoiser.base_channels", "abc", "int"]),
        ("model.cond_drop_prob=abc", ["model.cond_drop_prob", "abc", "float"]),
        ("model.denoiser.widht=3", ["model.denoiser.widht", "not in", "UNet3D"]),
        ("model.nonfinite_loss=maybe", ["model.nonfinite_loss", "fail", "skip"]),
        ("data.max_glosses=two", ["data.max_glosses", "two"]),
        ("eval.fvd.backbone=x3d", ["eval.fvd.backbone", "i3d", "videomae"]),
        ("eval.retrieval.timesteps=[early]", ["eval.retrieval.timesteps", "early"]),
    ],
)
def test_bad_overrides_fail_with_a_clear_message(tmp_path, override, expected):
    with pytest.raises(ConfigCompositionException) as err:
        compose_config([override], tmp_path)
    message = str(err.value) + str(err.value.__cause__ or "")
    for fragment in expected:
        assert fragment.lower() in message.lower(), message


@pytest.mark.parametrize(
    ("override", "expected"),
    [  # Union and Literal parameters, which OmegaConf cannot type: checked before the run
        ("trainer.precision=17", ["trainer.precision=17", "'16-mixed'", "bf16-true"]),
        ("trainer.devices=[a]", ["trainer.devices=['a']", "a list of int", "str"]),
        ("trainer.val_check_interval=[1]", ["trainer.val_check_interval=[1]", "float"]),
    ],
)
def test_bad_union_and_literal_values_fail_before_the_run(tmp_path, override, expected):
    with pytest.raises(ConfigError) as err:
        check_config(compose_config([override], tmp_path))
    for fragment in expected:
        assert fragment in str(err.value), str(err.value)
    check_config(compose_config(["trainer.precision=bf16-mixed", "trainer.devices=auto",
                                 "trainer.val_check_interval=2"], tmp_path))  # these fit
    with pytest.raises(ConfigError, match="`val_check_interval` should be an integer or a time"):
        # a fraction of an epoch needs check_val_every_n_epoch: Lightning's Trainer refuses it
        check_config(compose_config(["trainer.val_check_interval=0.5"], tmp_path))


def test_bad_override_on_the_command_line_stops_before_any_work(tmp_path, capfd):
    result = train(capfd, "ema=maybe", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode != 0
    assert "ema" in result.stderr and "maybe" in result.stderr
    assert not (tmp_path / "run" / "results.json").exists()


@pytest.mark.slow  # over 10 s: the default suite keeps under 5 minutes
def test_a_sweep_with_a_bad_job_stops_before_any_job_starts(tmp_path):
    sweep = tmp_path / "sweep"
    sizes = "8,16,24,32,40,48,56,64,9,72,80,88"  # job 9 of 12 cannot run
    said = command("train.py", "-m", *TINY, f"data.image_size={sizes}", f"hydra.sweep.dir={sweep}")
    assert said == ("1 of 12 jobs of the sweep cannot run; none was started:\n"
                    "job 9 of 12 (scale=tiny data.image_size=9): DataError: data.image_size=9 "
                    "must be a positive multiple of 2: the denoiser halves the frame size 1 "
                    "time(s) (model.denoiser.channel_mults=[1, 2]). Set data.image_size=8 or 10")
    said = command("train.py", "-m", *TINY, "ema=true,maybe", f"hydra.sweep.dir={sweep}")
    assert said.splitlines()[:3] == [  # a value Hydra cannot compose, with OmegaConf's reason
        "1 of 2 jobs of the sweep cannot run; none was started:",
        "job 2 of 2 (scale=tiny ema=maybe): ConfigCompositionException: Error merging "
        "override ema=maybe",
        "    Value 'maybe' is not a valid bool (type str)"]
    assert not sweep.exists()


def test_sweep_directories_cannot_collide():
    from text2sign.config import _unique_id, job_dirname

    sweep_dir = compose_hydra([]).hydra.sweep.dir
    assert sweep_dir.startswith("outputs/multirun/") and sweep_dir.count("-") >= 5
    assert _unique_id() != _unique_id()  # two sweeps in one second get different suffixes
    long = job_dirname(",".join(f"key{i}=value{i}" for i in range(40)), 7)
    assert long.startswith("job7_") and len(long) < 20


def test_sweep_job_paths_paste_into_an_override_unquoted(tmp_path):
    """A job directory is named so that Hydra's parser (and a shell) takes
    `ckpt_path=<sweep>/<job>/checkpoints/final.ckpt` as it is; names stay readable and
    distinct overrides never share a directory."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from text2sign.config import job_dirname

    assert job_dirname("ema=True,text_encoder=frozen", 0) == "ema-True+text_encoder-frozen"
    assert job_dirname("optimizer.lr=1e-4,seed=0", 1) == "optimizer.lr-1e-4+seed-0"
    overrides = ["text_encoder.name=/models/t5", "text_encoder.name=_models_t5",
                 "optimizer.lr=1e+30", "optimizer.lr=1e-30", "tags=[a,b]", "tags=[a_b]",
                 "callbacks.samples.prompts=[\"größe\",\"x y\"]", "seed=0,ema=True"]
    names = [job_dirname(o, k) for k, o in enumerate(overrides)]
    assert len(set(names)) == len(names)
    assert names[0].startswith("text_encoder.name-_models_t5_")  # readable, then a hash
    parser = OverridesParser.create()
    for name in names:
        path = f"outputs/multirun/2026-11-25_21-35-10_8533-a1f2/{name}/checkpoints/final.ckpt"
        assert parser.parse_overrides([f"ckpt_path={path}"])[0].value() == path, name
    # a sweep made before this naming resumes in its directories
    (tmp_path / "ema=True,text_encoder=frozen").mkdir()
    assert job_dirname("ema=True,text_encoder=frozen", 0, str(tmp_path)) == (
        "ema=True,text_encoder=frozen")
    assert job_dirname("ema=False,text_encoder=frozen", 1, str(tmp_path)) == (
        "ema-False+text_encoder-frozen")


def test_every_option_with_a_target_is_typed_by_its_signature(tmp_path):
    """Each group option's node is a structured config made from its `_target_`'s signature."""
    for group in ("data", "text_encoder", "model", "optimizer", "lr_scheduler", "trainer",
                  "callbacks", "logger", "eval"):
        for option in group_options(group):
            node = compose_config([f"{group}={option}"], tmp_path)[group]
            target = node.get("_target_", group)  # callbacks and logger: a node per target
            assert OmegaConf.get_type(node).__name__ == target.rsplit(".", 1)[-1], option
    cfg = compose_config([], tmp_path)
    assert OmegaConf.get_type(cfg.model.denoiser).__name__ == "UNet3D"
    assert OmegaConf.get_type(cfg.callbacks.best_checkpoint).__name__ == "ModelCheckpoint"


def test_a_key_in_conf_that_its_constructor_lacks_fails_at_registration(tmp_path):
    from text2sign.config import register_configs

    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    model = conf / "model" / "unet3d.yaml"
    model.write_text(model.read_text().replace("  dropout: 0.0", "  dropout: 0.0\n  widht: 3"))
    try:
        with pytest.raises(ValueError, match=r"unet3d.yaml: model.denoiser.widht is not a "
                                             r"parameter of text2sign.models.unet3d.UNet3D"):
            register_configs(conf)
    finally:
        register_configs()  # the real conf/ for the other tests


# every value checked before the first job, presets, one-line errors (issue 27) ---------------

@pytest.mark.parametrize("bad, message", [
    ("eval.steps=0", "ConfigError: eval.steps=0: the number of DDIM sampling steps must be >= 1"),
    ("callbacks.samples.fps=0", "ConfigError: callbacks.samples.fps=0: the frame rate"),
    ("callbacks.ema.decay=1.5", "ConfigError: callbacks.ema.decay=1.5 must be in (0, 1)"),
    ("eval.retrieval.num_candidates=1", "ConfigError: eval.retrieval.num_candidates=1 must be "
                                        ">= 2"),
    ("model.cond_drop_prob=1.5", "ConfigError: model.cond_drop_prob=1.5 must be in [0, 1)"),
    ("optimizer.lr=-1", "ConfigError: optimizer: ValueError: Invalid learning rate: -1.0"),
    ("data.max_glosses=9", "ConfigError: data.max_glosses=9 must be between 1 and 3"),
    ("model.denoiser.num_heads=3", "ConfigError: model.denoiser.num_heads=3 must divide the "
                                   "width of every attention block (16): set it to one of 1, 2, "
                                   "4, 8, 16"),
    ("trainer.val_check_interval=0", "ConfigError: trainer.val_check_interval=0 must be above 0"),
    ("trainer.gradient_clip_val=-1", "ConfigError: trainer.gradient_clip_val=-1 must be at "
                                     "least 0"),
    ("trainer.max_steps=-5", "ConfigError: trainer: MisconfigurationException: `max_steps` must "
                             "be a non-negative integer or -1"),
    ("data.num_workers=-1", "DataError: data.num_workers=-1 must be at least 0"),
    ("seed=-1", "ConfigError: seed=-1 must be between 0 and 4294967295"),
    ("text_encoder.name=/no/such/model", "ConfigError: text encoder '/no/such/model' is neither "
                                         "a local model directory"),
])
def test_every_value_a_run_checks_is_checked_before_it_starts(tmp_path, bad, message):
    """Once: the eval.*, callbacks.* and other values the run's constructors check were
    checked only as the run (or its job of a sweep, after the jobs before it) started, after
    its directory was made; a 0 or a negative value some only failed on later, or never."""
    with pytest.raises((ConfigError, DataError)) as error:
        check_config(compose_config([*TINY, bad], tmp_path))
    assert message in f"{type(error.value).__name__}: {error.value}"


def test_a_bad_sampling_value_stops_the_sweep_with_nothing_made(tmp_path):
    sweep = tmp_path / "sweep"
    said = command("train.py", "-m", *TINY, "eval.steps=2,0", f"hydra.sweep.dir={sweep}")
    assert said == ("1 of 2 jobs of the sweep cannot run; none was started:\n"
                    "job 2 of 2 (scale=tiny eval.steps=0): ConfigError: eval.steps=0: the number "
                    "of DDIM sampling steps must be >= 1, e.g. eval.steps=50")
    assert not sweep.exists()


def test_a_preset_that_sweeps_says_so_without_m_and_its_config_shows_the_sweep(tmp_path,
                                                                               capfd):
    """Once: `python train.py experiment=ablation_seeds` trained one job of the default config
    without a word, and `--cfg job` printed the default config, nothing of the preset."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):  # as in train.py
        cfg = compose("train", ["experiment=ablation_seeds", f"hydra.run.dir={tmp_path / 'run'}"],
                      return_hydra_config=True)
        with pytest.raises(PreflightFailed) as failed:
            Preflight().on_run_start(cfg)
    assert str(failed.value) == (
        "experiment=ablation_seeds is a sweep of 12 jobs (text_encoder=frozen,finetuned "
        "ema=true,false seed=0,1,2): run it with -m: python train.py -m experiment=ablation_seeds")
    assert not (tmp_path / "run").exists()
    capfd.readouterr()
    assert command("train.py", "experiment=architecture", "--cfg", "job") is None
    printed = capfd.readouterr().out
    assert printed.startswith(
        "# experiment=architecture is a sweep: its jobs are this config with each combination "
        "of these values (python train.py -m experiment=architecture runs them)\n"
        "#   model.denoiser.attention: factorised,full\n#   model.denoiser.conv: factorised,full\n")
    assert yaml.safe_load(printed)["model"]["denoiser"]["attention"] == "factorised"
    said = command("train.py", "-m", "experiment=architecture", "--cfg", "job")
    assert said == ("train.py: error: Only one of --run, --multirun, --cfg, --info and "
                    "--shell_completion can be specified; --cfg prints the config of one job: "
                    "drop -m")


def test_a_run_directory_in_use_stops_in_one_line_and_is_not_written(tmp_path, capfd):
    """Once: Hydra wrote .hydra/ and train.log into the directory of the run in progress,
    then the job stopped with a traceback."""
    run_dir = tmp_path / "run"
    with hold_run_directory(run_dir):
        said = command("train.py", *TINY, f"hydra.run.dir={run_dir}")
    assert said.startswith(f"RunDirectoryInUse: run directory {run_dir} is in use by process ")
    assert "Traceback" not in "".join(capfd.readouterr())
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]


def test_the_other_entry_points_say_a_users_mistake_in_one_line(tmp_path, capfd):
    capfd.readouterr()
    for program, args, message in [
            ("text2sign.cli.prepare", ["data=nope"], "prepare: error: MissingConfigException: "
                                                     "In 'train': Could not find 'data/nope'"),
            ("text2sign.cli.bench", ["bench.nope=1"], "bench: error: ConfigKeyError: Key 'nope' "
                                                      "not in 'BenchConfig'")]:
        assert command(program, *args) == 2
        stderr = capfd.readouterr().err
        assert stderr.startswith(message) and "Traceback" not in stderr, stderr
