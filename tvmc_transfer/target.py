"""Turn what tvmc users type into a TVM 0.27 ``Target``.

TVM 0.27 rejects the CLI form ``"llvm -mcpu=znver3 -num-cores=2"`` that tvmc users know. We accept it and
translate it to the JSON form, typing each option by the target kind's own schema. Also accepted: bare kinds
(``llvm``), tags (``nvidia/nvidia-h100``), JSON strings and ``.json`` files, ``native`` (this machine's exact CPU
and core count), per-option flags such as ``--target-llvm-mcpu``, and a host target.
"""

import difflib
import json
import logging
import shlex

from .errors import TVMCException, one_line
from .threads import usable_cpus

log = logging.getLogger(__name__)

# tvmc 0.19's BYOC targets ("compute-library, llvm"): partitioned codegens that TVM 0.27's wheels do not build.
BYOC_KINDS = ("compute-library", "acl", "ethos-n", "ethos-u", "cmsis-nn", "vitis-ai", "mrvl", "clml", "tensorrt", "dnnl", "bnns", "uma", "cutlass", "cublas", "cudnn")
EXAMPLES = "e.g. 'llvm', 'llvm -mcpu=znver3 -num-cores=2', 'cuda -arch=sm_90', 'native' or a JSON object"
# LLVM CPU features that are instruction sets (code using them does not run without them), by name prefix.
_ISA_FEATURES = ("avx", "sse", "fma", "f16c", "bmi", "amx", "vaes", "vpclmulqdq", "gfni", "sha", "aes", "popcnt", "lzcnt", "movbe", "adx", "xop", "neon", "sve", "dotprod", "fullfp16", "i8mm", "bf16")


def native_target() -> dict:
    """This machine's CPU exactly: its ``-mcpu`` and the number of cores this process may use."""
    import tvm  # pylint: disable=import-outside-toplevel


    return {
        "kind": "llvm",
        "mcpu": str(tvm.target.codegen.llvm_get_system_cpu()),
        "num-cores": len(usable_cpus()),
    }


def missing_cpu_features(target_config: dict) -> list:
    """The instruction sets a package compiled for ``target_config`` (its ``-mcpu`` and ``-mattr``) uses and this
    machine's CPU lacks, by LLVM's feature names; empty when it runs here (or is for another kind of target)."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.target import codegen

    if target_config.get("kind") != "llvm" or not (target_config.get("mcpu") or target_config.get("mattr")):
        return []
    triple = str(target_config.get("mtriple") or "")
    if triple and (not triple.startswith(str(codegen.llvm_get_system_triple()).split("-")[0]) or not _known_triple(triple)):
        return []  # built for another architecture (or a metadata.json's nonsense): loading it says so
    config = {k: target_config[k] for k in ("kind", "mcpu", "mattr", "mtriple") if target_config.get(k)}
    wanted = set(codegen.llvm_get_cpu_features(tvm.target.Target(config)))
    here = set(codegen.llvm_get_cpu_features(tvm.target.Target({"kind": "llvm", "mcpu": str(codegen.llvm_get_system_cpu())})))
    return sorted(f for f in wanted - here if f.startswith(_ISA_FEATURES))


def _parse_cli_form(text: str) -> dict:
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise TVMCException(f"cannot parse target '{text}': {err}") from None
    config = native_target() if words[0] in ("native", "host") else {"kind": words[0]}  # "native -mattr=-avx512f"
    for word in words[1:]:
        if not word.startswith("-") or word in ("-", "--"):
            raise TVMCException(f"cannot parse target '{text}': '{word}' is not an option like -mcpu=znver3")
        key, eq, value = word.lstrip("-").partition("=")
        config[key] = value if eq else True
    return config


def _read_target_text(text: str) -> dict | str:
    text = text.strip()
    if not text:
        raise TVMCException(f"the target is empty; give one, {EXAMPLES}")
    if text in ("native", "host"):
        return native_target()
    if text.endswith(".json"):
        try:
            with open(text, encoding="utf-8") as f:
                text = f.read().strip()
        except (OSError, ValueError) as err:  # ValueError: a NUL in the name, bytes that are not UTF-8
            raise TVMCException(f"cannot read target file {text!r}: {getattr(err, 'strerror', None) or err}") from None
    if text.startswith("{"):
        try:
            config = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as err:
            raise TVMCException(f"target is not valid JSON ({err}); {EXAMPLES}") from None
        if not isinstance(config, dict):
            raise TVMCException(f"a JSON target must be an object with a 'kind'; {EXAMPLES}")
        return config
    if any(c in text for c in "\n\r\x00"):
        raise TVMCException(f"a target is one line of text, got {text[:200]!r}; {EXAMPLES}")
    if "," in text or text in BYOC_KINDS:
        _refuse_target_list(text)
    if " " in text or text.startswith("-"):
        return _parse_cli_form(text)
    return text  # a bare kind or a tag: TVM knows both


def _byoc_error(kind: str) -> TVMCException:
    return TVMCException(
        f"'{kind}' is a BYOC target of tvmc 0.19; BYOC codegens are not in this TVM build (TVM 0.27 from PyPI "
        "ships none), so compile for the CPU or GPU target alone, e.g. --target llvm"
    )


def _refuse_target_list(text: str) -> None:
    """tvmc 0.19 took "compute-library, llvm"; a comma inside an option ("-mattr=+avx2,+fma") is no list."""
    import tvm  # pylint: disable=import-outside-toplevel

    kinds = [part.strip().split(" ")[0] for part in text.split(",") if part.strip()]
    for kind in kinds:
        if kind in BYOC_KINDS:
            raise _byoc_error(kind)
    if any(kind in tvm.target.Target.list_kinds() for kind in kinds[1:]):
        raise TVMCException(f"target '{text}' lists several targets; give one, and a host with --target-host")


def _known_triple(triple: str) -> bool:
    """Whether LLVM knows the target triple: TVM 0.27 segfaults listing the CPUs or features of one it does not
    (``llvm -mtriple=x86_64garbage -mcpu=znver3``), so ask this first. ``armv7a-...``, ``arm64-...`` and ``i686-...``
    are known by their CPUs; ``nvptx64-...``, which has no ``generic`` CPU, by its architecture."""
    from tvm.target import codegen  # pylint: disable=import-outside-toplevel

    return bool(codegen.llvm_is_valid_cpu("generic", triple)) or triple.split("-")[0] in list(codegen.llvm_get_targets())


def _check_llvm_cpu(config) -> None:
    """An unknown ``-mtriple`` crashes LLVM and an unknown ``-mcpu`` makes it emit generic code after a log line:
    refuse both first, naming the valid ones."""
    if not isinstance(config, dict) or config.get("kind") != "llvm":
        return
    import tvm  # pylint: disable=import-outside-toplevel

    codegen = tvm.target.codegen
    if config.get("mtriple") and not _known_triple(str(config["mtriple"])):
        architectures = ", ".join(str(a) for a in codegen.llvm_get_targets())
        raise TVMCException(f"-mtriple={config['mtriple']} is not a target triple LLVM knows (e.g. aarch64-linux-gnu); its architectures: {architectures}")
    if not config.get("mcpu"):
        return
    cpu, triple = str(config["mcpu"]), str(config.get("mtriple") or codegen.llvm_get_system_triple())
    if not codegen.llvm_is_valid_cpu(cpu, triple):
        valid = sorted(str(c) for c in codegen.llvm_get_cpu_archlist(tvm.target.Target({"kind": "llvm", "mtriple": triple})))
        near = difflib.get_close_matches(cpu, valid, n=3)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise TVMCException(f"-mcpu={cpu} is not a CPU LLVM knows for {triple}; {hint}valid: {', '.join(valid)}")


def _typed(kind: str, key: str, value, schema: dict):
    expected = schema.get(key)
    if expected is None:
        known = ", ".join(sorted(k for k in schema if k not in ("kind", "tag", "host", "from_device", "target_device_type")))
        raise TVMCException(f"target kind '{kind}' has no option '{key}'; its options are: {known}")
    if not isinstance(value, str):
        return value
    try:
        if expected == "int":
            return int(value)
        if expected == "bool":
            if value.lower() not in ("1", "0", "true", "false"):
                raise ValueError(value)
            return value.lower() in ("1", "true")
        if expected.startswith("Array"):
            return [item for item in value.split(",") if item]
    except ValueError:
        raise TVMCException(f"target option '{key}' of '{kind}' expects {expected}, got '{value}'") from None
    return value


def _normalize(config: dict) -> dict:
    import tvm  # pylint: disable=import-outside-toplevel

    kind = config.get("kind")
    if not isinstance(kind, str):
        raise TVMCException(f"a JSON target must be an object with a 'kind' string, got {json.dumps(config, default=str)[:200]}; {EXAMPLES}")
    if kind not in tvm.target.Target.list_kinds():
        if kind in BYOC_KINDS:
            raise _byoc_error(kind)
        raise TVMCException(f"unknown target kind '{kind}'; known kinds: {', '.join(sorted(tvm.target.Target.list_kinds()))}")
    schema = dict(tvm.target.TargetKind.options_from_name(kind))
    return {"kind": kind, **{key: _typed(kind, key, value, schema) for key, value in config.items() if key != "kind"}}


def _to_config(text_or_config) -> dict | str:
    config = _read_target_text(text_or_config) if isinstance(text_or_config, str) else dict(text_or_config)
    return _normalize(config) if isinstance(config, dict) else config


def parse_target(target, host=None, overrides: dict | None = None):
    """Translate a target in any accepted form into a ``tvm.target.Target``.

    >>> parse_target("llvm -mcpu=znver3 -num-cores=2").export()["num-cores"]
    2
    """
    import tvm  # pylint: disable=import-outside-toplevel

    if isinstance(target, tvm.target.Target) and not overrides and host is None:
        return target
    config = _to_config(target) if not isinstance(target, tvm.target.Target) else target_json(target)
    for kind, options in (overrides or {}).items():
        if not isinstance(config, dict):
            config = target_json(_build(tvm, config))
        if config["kind"] != kind:
            raise TVMCException(f"--target-{kind}-* options given, but the target is a '{config['kind']}' target")
        config.update(_normalize({"kind": kind, **options}))
    result = _build(tvm, config)
    if host is not None:
        result = tvm.target.Target(result, _build(tvm, _to_config(host)))
    return result


def _build(tvm, config):
    _check_llvm_cpu(config)
    try:
        target = tvm.target.Target(config)
    except Exception as err:  # TVM raises ValueError or its own errors with a long message
        shown = config if isinstance(config, str) else json.dumps(config, default=str)
        raise TVMCException(f"invalid target '{shown[:300]}': {one_line(err)}; {EXAMPLES}") from None
    if target.host is not None:  # a host inside the target's text or JSON
        _check_llvm_cpu(target_json(target.host))
    return target


def device_type(kind: str) -> str:
    """The device a target kind runs on, as ``tvm.device`` names it: ``llvm`` and ``c`` run on the CPU."""
    return "cpu" if kind in ("llvm", "c") else kind


def target_json(target) -> dict:
    """The target as plain JSON data (``Target.export()`` holds TVM containers); ``Target(data)`` rebuilds it."""
    return json.loads(str(target))


def tuning_target(target):
    """``target`` ready for MetaSchedule: an ``llvm`` target without ``-num-cores`` (which MetaSchedule must
    have: it sizes parallel loops by it) gets the number of cores this process may use, as ``native`` does."""
    config = target_json(target)
    if config.get("kind") != "llvm" or config.get("num-cores"):
        return target
    config["num-cores"] = native_target()["num-cores"]
    log.info("target has no -num-cores: tuning for this machine's %d cores", config["num-cores"])
    import tvm  # pylint: disable=import-outside-toplevel

    return _build(tvm, config)


def target_features(target) -> set:
    """The LLVM CPU features of ``target`` (empty for a kind that is not ``llvm`` or an unknown processor)."""
    from tvm.target import codegen  # pylint: disable=import-outside-toplevel

    if target.kind.name != "llvm":
        return set()
    try:
        return {str(f) for f in codegen.llvm_get_cpu_features(target)}
    except Exception:  # pylint: disable=broad-except
        return set()


def target_arch(target) -> str:
    """The architecture of an ``llvm`` target: from its ``mtriple``, else this machine's (``x86_64``, ``aarch64``)."""
    from tvm.target import codegen  # pylint: disable=import-outside-toplevel

    triple = str(target.attrs.get("mtriple", "") or "") or str(codegen.llvm_get_system_triple())
    return triple.split("-")[0]
