"""The driver: registry, plugins through entry points, option hooks, --config, and one-line errors."""

import json
import sys
import textwrap

from tvmc_transfer import main as driver
from tvmc_transfer.cli.driver import build_parser, read_config

from conftest import run_cli


def test_help_lists_commands_without_importing_tvm():
    code = (
        "import sys\nfrom tvmc_transfer.main import _main\ntry:\n    _main(['--help'])\nexcept SystemExit as e:\n"
        "    print('TVM_IMPORTED' if 'tvm' in sys.modules else 'NO_TVM', e.code)"
    )
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "NO_TVM 0" in proc.stdout
    for command in ("tune", "compile", "run", "zoo"):
        assert f"    {command}" in proc.stdout


def test_version_and_module_entry_point():
    result = run_cli("--version")
    assert result.code == 0 and result.out.startswith("tvmc-transfer ")


def test_registered_parser_becomes_a_command(tvmc):
    @driver.register_parser
    def add_hello(subparsers, main_parser, json_config):
        parser = subparsers.add_parser("hello-test")
        parser.add_argument("--name", default="world")
        parser.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    try:
        result = tvmc("hello-test", "--name", "tvmc")
        assert result.code == 0 and result.out.strip() == "hello tvmc"
    finally:
        driver.REGISTERED_PARSER.remove(add_hello)


def test_option_hook_adds_an_option_and_extends_the_plan():
    seen = []
    hook = driver.OptionHook(
        add_arguments=lambda parser: parser.add_argument("--extra-phase", action="store_true"),
        apply=lambda args, plan: seen.append((args.extra_phase, plan)),
    )
    driver.register_option_hook("tune", hook)
    try:
        args = build_parser().parse_args(["tune", "m.onnx", "-o", "r", "--extra-phase"])
        plan = []
        driver.apply_option_hooks("tune", args, plan)
        assert seen == [(True, plan)]
    finally:
        driver.OPTION_HOOKS["tune"].remove(hook)


def _write_plugin(folder):
    (folder / "tvmc_hello_plugin.py").write_text(
        textwrap.dedent(
            """
            from tvmc_transfer.main import OptionHook, register_option_hook, register_parser

            @register_parser
            def add_hello(subparsers, main_parser, json_config):
                parser = subparsers.add_parser("hello", help="a plugin's command")
                parser.set_defaults(func=lambda args: print("hello from a plugin") or 0)

            register_option_hook("compile", OptionHook(lambda p: p.add_argument("--plugin-flag", action="store_true")))
            """
        )
    )
    dist = folder / "tvmc_hello_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tvmc-hello-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tvmc_transfer.plugins]\nhello = tvmc_hello_plugin\n")


def test_plugin_from_entry_point_adds_command_and_options(tmp_path):
    _write_plugin(tmp_path)
    env = {"PYTHONPATH": str(tmp_path)}
    listed = run_cli("--help", env=env)
    assert "hello" in listed.out and "a plugin's command" in listed.out
    ran = run_cli("hello", env=env)
    assert ran.code == 0 and ran.out.strip() == "hello from a plugin"
    assert "--plugin-flag" in run_cli("compile", "--help", env=env).out


def test_config_file_sets_defaults_and_rejects_unknown_options(tmp_path, tvmc):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"zoo": {"seed": 7, "dynamic-batch": True}}))
    args = build_parser(read_config(["--config", str(config)])).parse_args(["zoo", "tiny-mlp"])
    assert args.seed == 7 and args.dynamic_batch is True
    config.write_text(json.dumps({"zoo": {"no-such-option": 1}}))
    result = tvmc("--config", config, "zoo", "list")
    assert result.code == 4 and result.err.strip() == "Error: --config sets unknown option(s) of 'zoo': no_such_option"
    config.write_text("{not json")
    result = tvmc("--config", config, "zoo", "list")
    assert result.code == 4 and result.err.startswith("Error: --config") and "not valid JSON" in result.err


def test_usage_mistakes_are_one_line_errors():
    result = run_cli("tune", "--no-such-flag")
    assert result.code == 2  # argparse's and tvmc 0.19's code for a usage error
    assert len(result.err.strip().splitlines()) == 1 and result.err.startswith("Error: ")
    assert "Traceback" not in result.err
