from pathlib import Path

import pytest

from leviathan_tui.config import Config, load_config
from leviathan_tui.errors import UsageError


def test_defaults_are_the_plans_values() -> None:
    c = Config()
    assert c.cluster.namespace == "ai-workloads"
    assert c.cluster.node_name == "talos-node-0"
    assert c.storage.host_mount == "/var/mnt/data"
    assert (c.model.repo, c.model.quant) == ("unsloth/DeepSeek-V3-GGUF", "Q4_K_M")
    assert c.model.model_dir == "/data/models/deepseek-v3-gguf"
    assert c.registry.address == "192.168.3.10:5000"
    assert c.build.base_image == "192.168.3.10:5000/omni/engine:bleeding-edge-v2"
    assert c.image_ref == "192.168.3.10:5000/omni/engine:leviathan-blackwell"
    assert c.build.torch_cuda_arch_list == "auto"  # the node's GPUs, not the plan's "9.0a 10.0"
    assert c.build.enable_deepgemm == 1
    assert c.deploy.node_port == 30000 and c.deploy.service_port == 30000
    assert c.build.ktransformers_ref == "v0.4.1"
    assert c.build.cpu_instruct != "NATIVE"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def refusal(tmp_path: Path, text: str) -> UsageError:
    """The error a config file with `text` gets."""
    with pytest.raises(UsageError) as err:
        load_config(write(tmp_path, text))
    return err.value


def test_each_wrong_field_named_with_its_path(tmp_path: Path) -> None:
    error = refusal(tmp_path, "ssh:\n  port: 70000\ncluster:\n  namespace: Bad_Name\n  nope: 1\n")
    text = str(error)
    assert "ssh.port: must be 1..65535" in text
    assert "cluster.namespace: must be a DNS label" in text
    assert "cluster.nope: unknown key" in text
    assert error.exit_code == 2


def test_a_misspelt_key_gets_a_suggestion_and_a_scalar_section_is_named_as_such(
    tmp_path: Path,
) -> None:
    text = str(refusal(tmp_path, "ssh: 5\ncluster:\n  nodename: n1\nclustr: {}\n"))
    assert "cluster.nodename: unknown key; did you mean node_name?" in text
    assert "clustr: unknown key; did you mean cluster?" in text
    assert "ssh: must be a section: a mapping of keys to values" in text
    assert "SshConfig" not in text  # no internal class names


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster:\n  namespace: ok\n  node_name: [unclosed\n")
    with pytest.raises(UsageError) as err:
        load_config(path)
    assert ":3" in str(err.value) or "line 3" in str(err.value) or "line 4" in str(err.value)


def test_wrong_type_and_cache_rule(tmp_path: Path) -> None:
    path = write(
        tmp_path, "deploy:\n  max_batch_size: 4\n  max_new_tokens: 4096\n  cache_lens: 8192\n"
    )
    with pytest.raises(UsageError) as err:
        load_config(path)
    assert "cache_lens (8192) must be greater than" in str(err.value)
    path = write(tmp_path, "deploy:\n  gpus: many\n")
    with pytest.raises(UsageError) as err:
        load_config(path)
    assert "deploy.gpus" in str(err.value)


def test_model_dir_must_not_end_in_gguf(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="must not end in .gguf"):
        load_config(write(tmp_path, "model:\n  model_dir: /data/models/x.gguf\n"))


def test_not_a_mapping_and_huge_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))
    big = tmp_path / "big.yaml"
    big.write_bytes(b"x" * (2 * 1024 * 1024))
    with pytest.raises(UsageError, match="refusing"):
        load_config(big)
