"""`backfill`: Backfill from a terminal, over its JSON API (standard library only).

    export BACKFILL_URL=https://backfill.example.com BACKFILL_TOKEN=bf_...
    backfill scripts
    backfill run campaign-currency-backfill --env staging --param tenant=acme --param batch_size=500
    backfill approvals
    backfill approve 12 --comment "looks right"

The URL and token come from BACKFILL_URL and BACKFILL_TOKEN, else from the JSON file named by
BACKFILL_CONFIG (default ~/.config/backfill/config.json: {"url": ..., "token": ...}).
"""

import argparse
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000"
FOLLOW_INTERVAL_SECONDS = 0.5
FOLLOW_RETRIES = 5
EXIT_FAILED, EXIT_ERROR = 1, 2


class CliError(Exception):
    """A message for the person at the terminal; exit status 2."""


class Unreachable(CliError):
    """The server did not answer: worth trying again while following a run."""


class Api:
    def __init__(self, url, token):
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                   "Accept": "application/json"}
        try:
            request = urllib.request.Request(f"{self.url}/api/{path}", data=data, method=method, headers=headers)
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            raise CliError(explain(error.code, read_json(error))) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            raise Unreachable(f"Cannot reach Backfill at {self.url}: {getattr(error, 'reason', error)}.") from None
        except ValueError as error:  # not JSON, or not a URL at all
            raise CliError(f"{self.url} did not answer as Backfill's API does ({error}); check BACKFILL_URL.") from None


def read_json(error):
    try:
        return json.loads(error.read() or b"null")
    except ValueError:
        return None


def explain(status, body):
    """The API's answer to a refused request, in plain lines (per-field messages included)."""
    if status == 401:
        return "The API token was refused: check BACKFILL_TOKEN (manage.py create_api_token USERNAME makes one)."
    if status == 404:
        return "Not found, or not yours to see."
    if isinstance(body, dict) and set(body) == {"detail"}:
        return str(body["detail"])
    if isinstance(body, dict):
        return "\n".join(field_lines(body)) or f"The server answered {status}."
    return f"The server answered {status}."


def field_lines(errors, prefix=""):
    for field, messages in errors.items():
        name = f"{prefix}{field}"
        if isinstance(messages, dict):
            yield from field_lines(messages, prefix=f"{name}.")
        else:
            yield f"{name}: {' '.join(map(str, messages if isinstance(messages, list) else [messages]))}"


def configuration():
    url, token = os.environ.get("BACKFILL_URL"), os.environ.get("BACKFILL_TOKEN")
    path = os.environ.get("BACKFILL_CONFIG") or os.path.expanduser("~/.config/backfill/config.json")
    if (not url or not token) and os.path.exists(path):
        try:
            with open(path) as f:
                saved = json.load(f)
        except (OSError, ValueError) as exc:
            raise CliError(f"Cannot read {path}: {exc}.") from None
        if not isinstance(saved, dict):
            raise CliError(f"{path} must hold a JSON object: {{\"url\": ..., \"token\": ...}}.")
        url, token = url or saved.get("url"), token or saved.get("token")
    if not token:
        raise CliError(f"No API token: set BACKFILL_TOKEN, or {{\"token\": ...}} in {path}.")
    return url or DEFAULT_URL, token


def params_from(pairs):
    """`--param name=value`, repeated for a list; values are text, as a form would send them."""
    params = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--param takes name=value, not {pair!r}.")
        if name in params:
            params[name] = (params[name] if isinstance(params[name], list) else [params[name]]) + [value]
        else:
            params[name] = value
    return params


def follow(api, run_id, out=sys.stdout):
    """Print the run's log as it comes until the run ends; the exit status says whether it succeeded."""
    after, told_waiting, misses = 0, False, 0
    while True:
        try:
            page = api.call("GET", f"runs/{run_id}/log/?after={after}")
            misses = 0
        except Unreachable:
            misses += 1
            if misses > FOLLOW_RETRIES:
                raise
            time.sleep(min(2 ** misses, 10))  # a blip while following: try again
            continue
        for chunk in page["chunks"]:
            out.write(chunk["text"])
        out.flush()
        after = page["next_after"]
        if page["status"] == "awaiting_approval" and not told_waiting:
            print(f"[run #{run_id} waits for approval]", file=sys.stderr)
            told_waiting = True
        if page["finished"] and not page["chunks"]:
            run = api.call("GET", f"runs/{run_id}/")
            print(f"[run #{run_id} {run['status']}: {run['status_detail']}]", file=sys.stderr)
            return 0 if run["status"] == "succeeded" else EXIT_FAILED
        if not page["chunks"]:
            time.sleep(FOLLOW_INTERVAL_SECONDS)


def show(data):
    print(json.dumps(data, indent=2, ensure_ascii=False))
    return 0


def command_scripts(api, args):
    for script in api.call("GET", "scripts/"):
        print(f"{script['slug']:<32} {script['name']}")
    return 0


def command_run(api, args):
    body = {"script": args.script, "environment": args.env, "params": params_from(args.param),
            "dry_run": args.dry_run, "reason": args.reason or ""}
    run = api.call("POST", "runs/", body)
    print(f"[run #{run['id']} {run['status']}]", file=sys.stderr)
    return 0 if args.no_follow else follow(api, run["id"])


def command_control(api, args):
    action = {"cancel": "cancel", "pause": "pause", "resume": "resume"}[args.command]
    return show(api.call("POST", f"runs/{args.run}/{action}/", {}))


def command_approvals(api, args):
    for request in api.call("GET", "approvals/"):
        print(f"#{request['id']:<5} run #{request['run']:<6} {request['script']} on {request['environment']} by "
              f"{request['requested_by']} ({request['approvals_given']}/{request['approvals_needed']}): "
              f"{request['reason']}")
    return 0


def command_decide(api, args):
    return show(api.call("POST", f"approvals/{args.request}/{args.command}/", {"comment": args.comment or ""}))


def parser():
    main = argparse.ArgumentParser(prog="backfill", description="Backfill from a terminal, over its JSON API.")
    commands = main.add_subparsers(dest="command", required=True)
    commands.add_parser("scripts", help="the scripts you may see").set_defaults(handler=command_scripts)
    run = commands.add_parser("run", help="start a run and follow its log to the end (exit 0 if it succeeded)")
    run.add_argument("script")
    run.add_argument("--env", required=True, help="the environment's slug")
    run.add_argument("--param", action="append", metavar="NAME=VALUE", help="a parameter (repeat for a list)")
    run.add_argument("--dry-run", action="store_true")
    run.add_argument("--reason", help="why (needed where runs wait for approval)")
    run.add_argument("--no-follow", action="store_true", help="print the run's id and return")
    run.set_defaults(handler=command_run)
    for name, helptext, handler in (
            ("show", "a run's details", lambda api, a: show(api.call("GET", f"runs/{a.run}/"))),
            ("log", "follow a run's log to its end", lambda api, a: follow(api, a.run)),
            ("cancel", "cancel a run", command_control), ("pause", "pause a backfill", command_control),
            ("resume", "resume a paused backfill", command_control)):
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("run", type=int)
        sub.set_defaults(handler=handler)
    commands.add_parser("approvals", help="requests waiting for your decision").set_defaults(
        handler=command_approvals)
    for name in ("approve", "reject"):
        sub = commands.add_parser(name, help=f"{name} an approval request")
        sub.add_argument("request", type=int)
        sub.add_argument("--comment")
        sub.set_defaults(handler=command_decide)
    return main


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        return args.handler(Api(*configuration()), args)
    except CliError as error:
        print(f"backfill: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the output was closed (e.g. piped into head)
        return 0
