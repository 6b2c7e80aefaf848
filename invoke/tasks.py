"""Root collection: ``image`` and ``deployment``.

``bash invoke.sh KIND NAME task`` loads one collection directly; CI jobs that manage their own
environment can call the same tasks with ``py3/bin/invoke --search-root invoke deployment.up --name spark/ld14``.
"""

from invoke import Collection

import deployment
import image

namespace = Collection(deployment, image)
