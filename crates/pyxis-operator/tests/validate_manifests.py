"""Validates Kubernetes manifests: built-in kinds against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: unknown fields are errors), Pyxis custom resources against the openAPIV3Schema of their CRD in --crds
(strict too: every object schema without additionalProperties is closed, as the API server's pruning plus
strict field validation would treat it).

usage: validate_manifests.py [--k8s-version 1.33] --crds DIR FILE...
Prints one line per document; exits 1 if any is invalid.
"""

import argparse
import copy
import glob
import os
import sys

import jsonschema
import kubernetes_validate
import yaml


def closed(schema):
    """A copy of an OpenAPI v3 schema where objects with properties reject unknown fields."""
    schema = copy.deepcopy(schema)

    def walk(s):
        if not isinstance(s, dict):
            return
        if "properties" in s and "additionalProperties" not in s and not s.get("x-kubernetes-preserve-unknown-fields"):
            s["additionalProperties"] = False
        for key in ("properties",):
            for sub in s.get(key, {}).values():
                walk(sub)
        for key in ("items", "additionalProperties", "not"):
            walk(s.get(key))
        for key in ("anyOf", "allOf", "oneOf"):
            for sub in s.get(key, []):
                walk(sub)

    walk(schema)
    return schema


def load_crds(directory):
    crds = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for v in spec["versions"]:
                    key = ("%s/%s" % (spec["group"], v["name"]), spec["names"]["kind"])
                    schema = closed(v["schema"]["openAPIV3Schema"])
                    # apiVersion, kind and metadata are checked by the API server itself.
                    for field in ("apiVersion", "kind", "metadata"):
                        schema.setdefault("properties", {})[field] = {}
                    crds[key] = schema
    return crds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k8s-version", default="1.33")
    ap.add_argument("--crds", required=True)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    crds = load_crds(args.crds)
    failures = 0
    for path in args.files:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            what = "%s %s/%s" % (path, doc.get("kind"), doc.get("metadata", {}).get("name"))
            try:
                key = (doc.get("apiVersion"), doc.get("kind"))
                if key in crds:
                    # OpenAPI v3.0 schemas use draft-4 keywords (boolean exclusiveMinimum).
                    jsonschema.Draft4Validator(crds[key]).validate(doc)
                else:
                    kubernetes_validate.validate(doc, args.k8s_version, strict=True)
                print("ok      " + what)
            except Exception as e:  # noqa: BLE001 - every failure is reported the same way
                failures += 1
                message = getattr(e, "message", None) or str(e)
                location = "/".join(str(p) for p in getattr(e, "absolute_path", []))
                print("INVALID %s: %s %s" % (what, location, message.splitlines()[0] if message else type(e).__name__))
    print("%d documents invalid" % failures)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
