"""Tasks of the ``deployment`` collection: each reads its options, makes one library call, prints.

Progress and the terraform commands go to stderr; results (summaries, outputs) to stdout.
"""

from invoke import Collection, Exit, task

from taskhelpers import deployment_name, handled

NAME_HELP = "the deployment as NAME/OWNER (default: $HGI_DEPLOYMENT, set by invoke.sh)"
JSON_HELP = "print JSON for scripts instead of a table"
SECRETS_HELP = "show sensitive outputs instead of masking them"
SKIP_HELP = "do not run the checks before planning (cloud quotas, flavors, image; local ports, tools); said loudly"


@task(help={"name": NAME_HELP})
@handled
def clean(c, name=None):
    """Remove plan files, their records and the rendered terraform.tfvars.json (never state)."""
    from hgi_spark.deploy import workflow

    for path in workflow.clean(deployment_name(name)):
        print(f"removed {path.name}")


@task(help={"name": NAME_HELP})
@handled
def down(c, name=None):
    """Apply destroy.tfplan (made by 'plan --to destroy'); refuses a missing or stale plan."""
    from hgi_spark.deploy import workflow

    print(workflow.down(deployment_name(name)).text())


@task(help={"name": NAME_HELP})
@handled
def init(c, name=None):
    """terraform init in the deployment's own working directory, data dir and state backend."""
    from hgi_spark.deploy import workflow

    workflow.init(deployment_name(name))


@task(help={"name": NAME_HELP, "json": JSON_HELP, "show_secrets": SECRETS_HELP})
@handled
def outputs(c, name=None, json=False, show_secrets=False):
    """The deployment's outputs: its nodes, URLs and where the password is (sensitive ones masked)."""
    from hgi_spark.deploy import workflow

    shown = workflow.outputs(deployment_name(name))
    print(shown.json(show_secrets=show_secrets) if json else shown.text(show_secrets=show_secrets))


@task(
    help={"name": NAME_HELP, "to": "what the plan is for: up, update (default) or destroy", "skip_preflight": SKIP_HELP}
)
@handled
def plan(c, name=None, to="update", skip_preflight=False):
    """Plan to <to>.tfplan (up, update or destroy), show it, record its inputs beside it."""
    from hgi_spark.deploy import workflow

    print(workflow.plan(deployment_name(name), to, skip_checks=skip_preflight).line())


@task(
    help={
        "name": NAME_HELP,
        "json": JSON_HELP,
        "show_secrets": SECRETS_HELP,
        "nodes": "each node's health instead: services, registration with the master, shared tmp, "
        "running applications and Jupyter kernels",
    }
)
@handled
def status(c, name=None, json=False, show_secrets=False, nodes=False):
    """State, pending plans (fresh or stale, and why), lock holder, processes or nodes; changes nothing."""
    from hgi_spark.deploy import workflow

    if nodes:
        print(workflow.health(deployment_name(name)).text(as_json=json))
        return
    result = workflow.status(deployment_name(name))
    print(result.as_json(show_secrets=show_secrets) if json else result.as_text(show_secrets=show_secrets))
    if result.problems:
        raise Exit(f"error: {result.problems[0]}", code=3)


@task(help={"name": NAME_HELP, "dest": "the folder the archive goes to (default: the current folder)"})
@handled
def diagnose(c, name=None, dest="."):
    """One archive of every node's logs, configuration and status, every secret masked."""
    from pathlib import Path

    from hgi_spark.deploy import workflow

    print(workflow.diagnose(deployment_name(name), Path(dest)))


@task(help={"name": NAME_HELP})
@handled
def idle(c, name=None):
    """How long the cluster has had no running Spark application and no busy Jupyter kernel (read-only)."""
    from hgi_spark.deploy import workflow

    print(workflow.idle(deployment_name(name)).line())


@task(help={"name": NAME_HELP})
@handled
def reap(c, name=None):
    """For cron: destroy the cluster if its YAML opted in (max_idle) and it has been idle longer."""
    from hgi_spark.deploy import workflow

    print(workflow.reap(deployment_name(name)))


@task(
    help={
        "name": NAME_HELP,
        "json": JSON_HELP,
        "adopt": "write import blocks for them, for the next 'plan --to update' to show and 'update' to apply",
        "plan_delete": "write a deletion plan of them (orphans-delete.plan.json) to review",
        "keep_adoptable": "with --plan-delete: only those that cannot be adopted",
        "delete": "delete exactly what the reviewed deletion plan lists (refused when missing or stale)",
    }
)
@handled
def orphans(c, name=None, json=False, adopt=False, plan_delete=False, keep_adoptable=False, delete=False):
    """Cloud resources of the deployment outside its state: list, adopt (import) or delete them, reviewed."""
    from hgi_spark.deploy import orphans as steps

    found = steps.step(
        deployment_name(name),
        adopt_them=adopt,
        plan_deletion=plan_delete,
        keep_adoptable=keep_adoptable,
        delete_them=delete,
    )
    print(found.json() if json else found.text())


@task(help={"name": NAME_HELP, "json": JSON_HELP})
@handled
def preflight(c, name=None, json=False):
    """Check the cloud before planning: credentials, flavors, image, networks, key pair, quotas."""
    from hgi_spark.deploy import workflow

    report = workflow.preflight(deployment_name(name))
    print(report.as_json() if json else report.table())
    report.require_ok()


@task(help={"name": NAME_HELP, "skip_preflight": SKIP_HELP})
@handled
def up(c, name=None, skip_preflight=False):
    """clean, init, validate, plan up.tfplan, apply exactly that plan, print the outputs."""
    from hgi_spark.deploy import workflow

    _summary, shown = workflow.up(deployment_name(name), skip_checks=skip_preflight)
    print(shown.text())


@task(help={"name": NAME_HELP})
@handled
def update(c, name=None):
    """Apply update.tfplan (made by 'plan --to update'); refuses a missing or stale plan."""
    from hgi_spark.deploy import workflow

    print(workflow.update(deployment_name(name)).text())


@task(help={"name": NAME_HELP})
@handled
def validate(c, name=None):
    """Validate the YAML, render terraform.tfvars.json, init, and run terraform validate."""
    from hgi_spark.deploy import workflow

    rendered = workflow.validate(deployment_name(name))
    print(f"valid; rendered {rendered.name}")


@task(help={"name": NAME_HELP})
@handled
def password(c, name=None):
    """Print the deployment's Jupyter password (generated once, kept 0600 in its secrets/)."""
    from hgi_spark.core import secrets

    print(secrets.password_of(deployment_name(name)))


@task(
    positional=["script"],
    help={"name": NAME_HELP, "script": "the Python script to run; its arguments follow a '--'"},
)
@handled
def submit(c, script, name=None):
    """Run a Python script on the cluster (spark-submit with Hail's settings): submit job.py -- ARGS."""
    import shlex

    from hgi_spark.deploy import workflow

    code = workflow.submit(deployment_name(name), script, shlex.split(c.remainder or ""))
    if code:
        raise Exit(f"error: {script} exited with {code}", code=code)


@task(help={"name": NAME_HELP})
@handled
def install(c, name=None):
    """Install the YAML's extra_python_packages and extra_system_packages on every node now."""
    from hgi_spark.deploy import workflow

    report = workflow.install(deployment_name(name))
    print(report.text())
    if report.failed:
        raise Exit(f"error: extra packages failed on {len(report.failed)} of {len(report.results)} node(s)", code=5)


@task(help={"name": NAME_HELP})
@handled
def ssh_config(c, name=None):
    """Print a ~/.ssh/config entry for the master, its host key pinned from the console log."""
    from hgi_spark.deploy import workflow

    print(workflow.ssh_config(deployment_name(name)), end="")


namespace = Collection(
    clean,
    diagnose,
    down,
    idle,
    init,
    install,
    orphans,
    outputs,
    password,
    plan,
    preflight,
    reap,
    ssh_config,
    status,
    submit,
    up,
    update,
    validate,
)
