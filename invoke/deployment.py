"""Tasks of the ``deployment`` collection: thin wrappers over hgi_spark.

Each task reads its options, calls one library function and prints the result. Progress and the
terraform commands go to stderr; results (summaries, outputs) to stdout.
"""

from invoke import Collection, Exit, task

from taskhelpers import handled

NAME_HELP = "the deployment as NAME/OWNER (default: $HGI_DEPLOYMENT, set by invoke.sh)"
JSON_HELP = "print JSON for scripts instead of a table"
SECRETS_HELP = "show sensitive outputs instead of masking them"
SKIP_PREFLIGHT_HELP = "do not check the cloud first (quotas, flavors, image ...); a warning says so"


def _print_outputs(outputs, *, as_json=False, show_secrets=False):
    from hgi_spark import outputs as shown

    if as_json:
        print(shown.as_json(outputs, show_secrets=show_secrets))
    else:
        print(shown.as_table(outputs, show_secrets=show_secrets))


@task(help={"name": NAME_HELP})
@handled
def clean(c, name=None):
    """Remove plan files, their records and the rendered terraform.tfvars.json (never state)."""
    from hgi_spark import workflow

    for path in workflow.clean(name):
        print(f"removed {path.name}")


@task(help={"name": NAME_HELP})
@handled
def down(c, name=None):
    """Apply destroy.tfplan (made by 'plan --to destroy'); refuses a missing or stale plan."""
    from hgi_spark import workflow

    _print_outputs(workflow.down(name))


@task(help={"name": NAME_HELP})
@handled
def init(c, name=None):
    """terraform init in the deployment's own working directory, data dir and state backend."""
    from hgi_spark import workflow

    workflow.init(name)


@task(help={"name": NAME_HELP, "json": JSON_HELP, "show_secrets": SECRETS_HELP})
@handled
def outputs(c, name=None, json=False, show_secrets=False):
    """The deployment's terraform outputs (sensitive ones masked)."""
    from hgi_spark import workflow

    _print_outputs(workflow.outputs(name), as_json=json, show_secrets=show_secrets)


@task(
    help={
        "name": NAME_HELP,
        "to": "what the plan is for: up, update (default) or destroy",
        "skip_preflight": SKIP_PREFLIGHT_HELP,
    }
)
@handled
def plan(c, name=None, to="update", skip_preflight=False):
    """Plan to <to>.tfplan (up, update or destroy), show it, record its inputs beside it."""
    from hgi_spark import preflight as checks
    from hgi_spark import workflow

    with checks.skipped(skip_preflight, purpose=to):
        summary = workflow.plan(name, to)
    print(summary.line())


@task(help={"name": NAME_HELP, "json": JSON_HELP, "show_secrets": SECRETS_HELP})
@handled
def status(c, name=None, json=False, show_secrets=False):
    """State, pending plans (fresh or stale, and why), lock holder and outputs; changes nothing."""
    import json as json_module

    from hgi_spark import outputs as shown
    from hgi_spark import workflow

    result = workflow.status(name)
    if json:
        document = {
            "status": dict(result.rows),
            "outputs": shown.values(result.outputs, show_secrets=show_secrets),
        }
        print(json_module.dumps(document, indent=2, sort_keys=True))
        return
    print(shown.table(result.rows))
    print()
    _print_outputs(result.outputs, show_secrets=show_secrets)


@task(help={"name": NAME_HELP, "json": JSON_HELP})
@handled
def preflight(c, name=None, json=False):
    """Check the cloud before planning: credentials, flavors, image, networks, key pair, quotas."""
    from hgi_spark import preflight as checks

    report = checks.check(name)
    print(report.as_json() if json else report.table())
    checks.require_ok(report)


@task(help={"name": NAME_HELP, "skip_preflight": SKIP_PREFLIGHT_HELP})
@handled
def up(c, name=None, skip_preflight=False):
    """clean, init, validate, plan up.tfplan, apply exactly that plan, print the outputs."""
    from hgi_spark import preflight as checks
    from hgi_spark import workflow

    with checks.skipped(skip_preflight):
        _summary, outputs = workflow.up(name)
    _print_outputs(outputs)


@task(help={"name": NAME_HELP})
@handled
def update(c, name=None):
    """Apply update.tfplan (made by 'plan --to update'); refuses a missing or stale plan."""
    from hgi_spark import workflow

    _print_outputs(workflow.update(name))


@task(help={"name": NAME_HELP})
@handled
def validate(c, name=None):
    """Validate the YAML, render terraform.tfvars.json, init, and run terraform validate."""
    from hgi_spark import workflow

    rendered = workflow.validate(name)
    print(f"valid; rendered {rendered.name}")


@task(help={"name": NAME_HELP})
@handled
def password(c, name=None):
    """Print the deployment's Jupyter password (generated once, kept 0600 in its secrets/)."""
    from hgi_spark import config, secrets

    print(secrets.jupyter_password(config.load_deployment(name).paths))


@task(
    positional=["script"],
    help={"name": NAME_HELP, "script": "the Python script to run; its arguments follow a '--'"},
)
@handled
def submit(c, script, name=None):
    """Run a Python script on the cluster (spark-submit with Hail's settings): submit job.py -- ARGS."""
    import shlex

    from hgi_spark import rootmodules

    code = rootmodules.submit(name, script, shlex.split(c.remainder or ""))
    if code:
        raise Exit(f"error: {script} exited with {code}", code=code)


@task(help={"name": NAME_HELP})
@handled
def ssh_config(c, name=None):
    """Print a ~/.ssh/config entry for the master, its host key pinned from the console log."""
    from hgi_spark import sshconfig

    print(sshconfig.ssh_config(name), end="")


namespace = Collection(
    clean, down, init, outputs, password, plan, preflight, ssh_config, status, submit, up, update, validate
)
