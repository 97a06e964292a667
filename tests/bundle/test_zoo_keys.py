"""The configs carry the MONAI model zoo's key names: ``network_def`` (the prior's DiffusionModelUNet with the
shipped weights), ``key_in_ckpt``, ``inferer``, and every property MONAI's bundle-property check requires."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "bundles" / "ddpm_recon" / "configs"


def _parser(name: str):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / name))
    return parser


@pytest.mark.parametrize("name", ["inference.json", "evaluate.json"])
def test_network_def_is_the_prior_network_with_the_checkpoint_loaded(name):
    from monai.inferers import DiffusionInferer
    from monai.networks.nets import DiffusionModelUNet
    from monai.networks.schedulers import DDPMScheduler

    parser = _parser(name)
    net = parser.get_parsed_content("network_def")
    assert isinstance(net, DiffusionModelUNet)
    # the zoo's checkpoint export reloads the file under key_in_ckpt: the weights are the ones network_def holds
    ckpt = torch.load(parser.get_parsed_content("prior_checkpoint"), map_location="cpu", weights_only=True)
    state = ckpt[parser["key_in_ckpt"]]
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    prior = parser.get_parsed_content("prior")
    n_in = prior.channels + prior.condition_channels  # the patch prior's network also sees 2 coordinate channels
    with torch.no_grad():
        out = net(torch.randn(2, n_in, 64, 64), timesteps=torch.tensor([10, 500]))
    assert out.shape == (2, prior.channels, 64, 64)
    inferer = parser.get_parsed_content("inferer")
    assert isinstance(inferer, DiffusionInferer) and isinstance(inferer.scheduler, DDPMScheduler)
    assert torch.allclose(inferer.scheduler.alphas_cumprod.double(), prior.alphas_cumprod.double(), atol=1e-6)


@pytest.mark.parametrize("name", ["inference.json", "evaluate.json"])
def test_inference_configs_have_every_required_property(name, tmp_path):
    from monai.bundle import ConfigWorkflow

    # output_dir in tmp_path: an earlier run's bundles/ddpm_recon/output would make the workflow refuse to overwrite
    workflow = ConfigWorkflow(config_file=str(CONFIGS / name), workflow_type="infer", output_dir=str(tmp_path))
    workflow.initialize()
    assert workflow.check_properties() == []


def test_train_config_has_every_required_property_id():
    """Checked by ID: evaluating the train properties needs the training data (the Colin27 template)."""
    from monai.bundle.properties import TrainProperties
    from monai.inferers import DiffusionInferer
    from monai.networks.nets import DiffusionModelUNet
    from monai.utils import BundleProperty, BundlePropertyConfig

    parser = _parser("train.json")
    required = [p[BundlePropertyConfig.ID] for p in TrainProperties.values() if p.get(BundleProperty.REQUIRED)]
    assert [i for i in required if i not in parser] == []
    for alias in ("dataset_dir", "train#trainer", "train#trainer#max_epochs", "train#dataset", "train#dataset#data", "train#handlers"):
        assert alias in parser, alias
    assert parser["train#trainer#engine"] == "@trainer" and parser["train#dataset#dataset"] == "@train_dataset"
    assert isinstance(parser.get_parsed_content("network_def"), DiffusionModelUNet)
    assert isinstance(parser.get_parsed_content("train#inferer"), DiffusionInferer)


def test_large_files_yml_names_the_shipped_priors_and_their_hashes():
    import hashlib
    import json

    yaml = pytest.importorskip("yaml")

    bundle = CONFIGS.parent
    entries = yaml.safe_load((bundle / "large_files.yml").read_text())["large_files"]
    assert sorted(e["path"] for e in entries) == ["models/model.pt", "models/patch/model.pt"]
    for entry in entries:
        folder = (bundle / entry["path"]).parent
        meta = json.loads((folder / "model_metadata.json").read_text())
        assert entry["path"].endswith("/" + meta["checkpoint"]) and entry["hash_type"] == "sha256"
        assert entry["hash_val"] == meta["sha256"] == hashlib.sha256((bundle / entry["path"]).read_bytes()).hexdigest()


def test_train_config_property_check_passes_on_a_prepared_folder(tmp_path):
    import numpy as np
    from monai.bundle import ConfigWorkflow

    for name, n in (("train", 10), ("heldout", 2)):
        np.save(tmp_path / f"{name}.npy", np.random.default_rng(0).random((n, 1, 16, 16), dtype=np.float32))
    workflow = ConfigWorkflow(
        config_file=str(CONFIGS / "train.json"), workflow_type="train",
        data_dir=str(tmp_path), image_size=16, channels=[8, 8], output_dir=str(tmp_path / "out"),
    )
    workflow.initialize()
    assert workflow.check_properties() == []
    assert workflow.max_epochs == -(-3000 * 16 // 10)  # derived from max_steps, batch_size and 10 training slices
    assert workflow.dataset_dir == str(tmp_path)
    assert type(workflow.trainer["engine"]).__name__ == "DDPMTrainer"
