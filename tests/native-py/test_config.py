"""`--config FILE` (TOML, keys are
the flag names in snake_case), env `SWITCHBOARD_<FLAG>`, precedence flags >
env > TOML > defaults, `--print-config` (resolved TOML, secrets redacted),
the generated admin key line, `--log-format json`."""

import asyncio
import json
import re
import subprocess
import tomllib

import pytest

from conftest import binary
from sb_client import API_KEY, Admin, Native, refused_status


def write(tmp_path, text, name="switchboard.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def print_config(*args, env=None, timeout=20):
    import os

    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(
        [str(binary()), "serve", "--print-config", *args],
        capture_output=True,
        text=True,
        env=e,
        timeout=timeout,
    )
    return r


async def welcome_interval(srv) -> int:
    c = await Native.open(srv.ws)
    try:
        return c.welcome["ping_interval"]
    finally:
        await c.close()


# -- the TOML file ---------------------------------------------------------


async def test_config_file(server_factory, tmp_path, clients):
    cfg = write(
        tmp_path,
        """
listen = "127.0.0.1:0"
api_key = "toml-key"
ping_interval = "1500ms"
ping_timeout = "1s"
max_rooms = 1
allowed_origins = ["https://a.example", "https://b.example"]
""",
    )
    srv = server_factory("--config", str(cfg), defaults=False)
    assert Admin(srv.http, key="toml-key").get("/stats").status_code == 200
    assert Admin(srv.http, key=API_KEY).get("/stats").status_code == 401
    c = await clients.native(srv.ws, origin="https://b.example")
    assert c.welcome["ping_interval"] == 1500
    await c.ok("join", room="one")
    assert (await c.request("join", room="two"))["error"]["code"] == "too_many_rooms"
    assert await refused_status(srv.ws, additional_headers={"Origin": "https://c.example"}) == 403


async def test_env(server_factory, clients):
    env = {
        "SWITCHBOARD_LISTEN": "127.0.0.1:0",
        "SWITCHBOARD_API_KEY": "env-key",
        "SWITCHBOARD_PING_INTERVAL": "700ms",
        "SWITCHBOARD_MAX_ROOMS": "1",
        "SWITCHBOARD_ALLOWED_ORIGINS": "https://a.example,https://b.example",
    }
    srv = server_factory(env=env, defaults=False)
    assert Admin(srv.http, key="env-key").get("/stats").status_code == 200
    c = await clients.native(srv.ws, origin="https://b.example")
    assert c.welcome["ping_interval"] == 700
    await c.ok("join", room="one")
    assert (await c.request("join", room="two"))["error"]["code"] == "too_many_rooms"
    assert await refused_status(srv.ws, additional_headers={"Origin": "https://c.example"}) == 403


async def test_env_data_dir(server_factory, tmp_path):
    d = tmp_path / "env-data"
    srv = server_factory(env={"SWITCHBOARD_DATA_DIR": str(d)})
    await Admin(srv.http).aok("POST", "/publish", {"room": "r", "event": "e", "data": 1})
    assert (d / "history.redb").exists()


@pytest.mark.parametrize(
    "toml, env, flag, expected",
    [
        (None, None, None, 25000),
        ("1s", None, None, 1000),
        ("1s", "2s", None, 2000),
        ("1s", "2s", "3s", 3000),
        (None, "2s", "3s", 3000),
        ("1s", None, "3s", 3000),
        (None, "2s", None, 2000),
    ],
)
async def test_precedence_flags_env_toml_defaults(server_factory, tmp_path, toml, env, flag, expected):
    args = ["--listen", "127.0.0.1:0", "--api-key", API_KEY]
    if toml:
        args += ["--config", str(write(tmp_path, f'ping_interval = "{toml}"\n'))]
    if flag:
        args += ["--ping-interval", flag]
    srv = server_factory(*args, env={"SWITCHBOARD_PING_INTERVAL": env} if env else None, defaults=False)
    assert await welcome_interval(srv) == expected


async def test_listen_from_toml_loses_to_the_flag(server_factory, tmp_path):
    cfg = write(tmp_path, 'listen = "127.0.0.1:1"\napi_key = "toml-key"\n')
    srv = server_factory("--config", str(cfg), "--listen", "127.0.0.1:0", defaults=False)
    assert srv.port != 1
    assert Admin(srv.http, key="toml-key").get("/stats").status_code == 200


def test_missing_config_file_is_an_error(tmp_path):
    r = subprocess.run(
        [str(binary()), "serve", "--config", str(tmp_path / "nope.toml"), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.returncode != 0


# -- --print-config --------------------------------------------------------

SECRETS = {"api_key": "s3cr3t-api", "jwt_secret": "s3cr3t-jwt", "webhook_secret": "s3cr3t-hook"}


def test_print_config_redacts_secrets():
    r = print_config(
        "--api-key", SECRETS["api_key"],
        "--jwt-secret", SECRETS["jwt_secret"],
        "--webhook-secret", SECRETS["webhook_secret"],
        "--ping-interval", "1500ms",
        "--max-rooms", "7",
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for v in SECRETS.values():
        assert v not in out and v not in r.stderr, "a secret was printed"
    cfg = tomllib.loads(out)
    for k in SECRETS:
        assert cfg[k] == "<redacted>", (k, cfg.get(k))
    assert cfg["max_rooms"] == 7
    assert "ping_interval" in cfg and "listen" in cfg


def test_print_config_resolves_precedence(tmp_path):
    cfg = write(tmp_path, 'max_rooms = 3\nrate = 5.0\nhistory_size = 10\n')
    r = print_config(
        "--config", str(cfg), "--max-rooms", "9",
        env={"SWITCHBOARD_RATE": "7", "SWITCHBOARD_MAX_ROOMS": "8"},
    )
    assert r.returncode == 0, r.stderr
    out = tomllib.loads(r.stdout)
    assert out["max_rooms"] == 9, "flag over env over TOML"
    assert out["rate"] == 7, "env over TOML"
    assert out["history_size"] == 10, "TOML over the default"
    assert out["max_payload"] == 65536, "the new default"


def test_print_config_without_secrets_does_not_invent_them():
    r = print_config()
    assert r.returncode == 0, r.stderr
    cfg = tomllib.loads(r.stdout)
    assert cfg.get("jwt_secret") in (None, "<redacted>")


def test_print_config_output_is_a_valid_config(tmp_path, server_factory):
    """Beyond the letter of docs/operations.md: what "prints the resolved config as TOML"
    is for: the output (less the redacted secrets) is a usable --config."""
    r = print_config("--ping-interval", "1234ms", "--listen", "127.0.0.1:0")
    assert r.returncode == 0, r.stderr
    cfg = tomllib.loads(r.stdout)
    # Secrets come out redacted; drop them before feeding the file back.
    lines = [l for l in r.stdout.splitlines() if "<redacted>" not in l]
    p = write(tmp_path, "\n".join(lines) + "\n", "printed.toml")
    srv = server_factory("--config", str(p), "--api-key", API_KEY, defaults=False)
    assert Admin(srv.http).get("/stats").status_code == 200
    assert cfg["listen"] == "127.0.0.1:0"


# -- the generated key, logs -----------------------------------------------


def test_generated_admin_key_is_printed_and_works(server_factory):
    import time

    srv = server_factory(api_key=None)
    deadline = time.monotonic() + 5  # the line may come after the address line
    while not (m := re.search(r"admin API key \(generated\): (\S+)", srv.log_text())):
        assert time.monotonic() < deadline, srv.log_text()
        time.sleep(0.05)
    assert Admin(srv.http, key=m.group(1)).get("/stats").status_code == 200
    assert Admin(srv.http, key="test-key").get("/stats").status_code == 401


async def test_log_format_json_and_level(server_factory):
    """A refused connection is logged at debug level: as a JSON object with
    --log-format json; not at all with --log-level warn."""

    async def refused_logs(*flags, wait=3.0):
        srv = server_factory("--jwt-secret", "log-secret", *flags)
        assert await refused_status(srv.ws, "/ws?token=garbage") == 401
        for _ in range(int(wait / 0.1)):
            await asyncio.sleep(0.1)
            lines = [l for l in srv.log_text().splitlines() if "refused" in l]
            if lines:
                break
        return lines

    lines = await refused_logs("--log-format", "json", "--log-level", "debug")
    assert lines, "the refused connection was not logged at debug level"
    for line in lines:
        obj = json.loads(line)
        assert isinstance(obj, dict), line
    assert await refused_logs("--log-format", "json", "--log-level", "warn", wait=0.5) == []
