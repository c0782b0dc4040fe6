"""The README.md of the model download: what the head file holds and how to run it."""

from __future__ import annotations

from labeler.projects.models import Project
from labeler.training.models import ModelVersion

README_TEMPLATE = """# {project} — labeler head v{version}

A logistic-regression head trained by labeler on {labels} labels, on top of the frozen
`{backbone}` backbone. Cross-validated accuracy: {cv}; accuracy on audit items: {audit}.

Files:
- `head.joblib`: a dict `{{"head": LogisticHead, "backbone": "{backbone}", "classes": [label ids]}}`
- `classes.json`: label id -> class name

## Inference with the same backbone

Embeddings must come from the same backbone and preprocessing as in training, so use labeler's
own featurizer (install the labeler repository, e.g. `pip install -e .`; it runs offline):

```python
import json

import joblib
import numpy as np

from worker.ml.featurizer import Featurizer

bundle = joblib.load("head.joblib")
names = json.load(open("classes.json"))          # {{"<label id>": "<class name>"}}
featurizer = Featurizer(bundle["backbone"])       # "{backbone}"
paths = ["photo1.jpg", "photo2.jpg"]
X, errors = featurizer.embed_paths(paths)         # float32 (n, dim); NaN rows = unreadable
ok = ~np.isnan(X).any(axis=1)
proba = bundle["head"].predict_proba(X[ok])       # (n_ok, n_classes), columns = bundle["classes"]
for path, p in zip(np.array(paths)[ok], proba):
    best = int(p.argmax())
    print(path, names[str(bundle["classes"][best])], round(float(p[best]), 3))
```

## Several label sets

`head` answers the project's first single-choice set. `bundle["sets"]` maps every other set's id
to `{{"name", "kind", "head", "classes"}}` (`label_sets.json` lists the sets): a single-choice
set's head works as above; a multi-label set's head gives one probability per tag (columns =
its `classes`), a tag being predicted at 0.5 or more.

```python
for set_id, entry in bundle.get("sets", {{}}).items():
    p = entry["head"].predict_proba(X[ok])
    if entry["kind"] == "multi":
        print(entry["name"], [[names[str(c)] for c, q in zip(entry["classes"], row) if q >= 0.5]
                              for row in p])
    else:
        print(entry["name"], [names[str(entry["classes"][int(row.argmax())])] for row in p])
```
"""


def model_readme(project: Project, version: ModelVersion) -> str:
    m = version.metrics or {}

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f} %"

    return README_TEMPLATE.format(
        project=project.name, version=version.number, labels=version.labels_used,
        backbone=version.backbone, cv=pct(m.get("cv_accuracy")), audit=pct(m.get("audit_accuracy")),
    )
