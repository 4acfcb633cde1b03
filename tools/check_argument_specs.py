#!/usr/bin/env python3
"""Keep every role's meta/argument_specs.yml in step with its defaults/main.yml.

Checks, for each role under roles/:
  * meta/argument_specs.yml exists and has a `main` entry point;
  * every variable in defaults/main.yml is declared in the spec, and every declared option
    either has a default in defaults/main.yml or is `required: true`;
  * every public variable is prefixed with the role name (`<role>_`);
  * a declared `default:` (when given) equals the value in defaults/main.yml.
Exit status 1 with one line per problem.
"""
import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(path):
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def check_role(role_dir):
    role = os.path.basename(role_dir)
    problems = []
    spec_path = os.path.join(role_dir, "meta", "argument_specs.yml")
    if not os.path.exists(spec_path):
        return ["%s: meta/argument_specs.yml is missing" % role]
    specs = load(spec_path).get("argument_specs", {})
    if "main" not in specs:
        return ["%s: argument_specs has no 'main' entry point" % role]
    options = specs["main"].get("options", {}) or {}
    defaults_path = os.path.join(role_dir, "defaults", "main.yml")
    defaults = load(defaults_path) if os.path.exists(defaults_path) else {}
    for name in defaults:
        if not name.startswith(role + "_"):
            problems.append("%s: default '%s' is not prefixed with '%s_'" % (role, name, role))
        if name not in options:
            problems.append("%s: default '%s' is not declared in meta/argument_specs.yml" % (role, name))
    for name, opt in options.items():
        opt = opt or {}
        if not name.startswith(role + "_"):
            problems.append("%s: option '%s' is not prefixed with '%s_'" % (role, name, role))
        if name not in defaults and not opt.get("required", False):
            problems.append("%s: option '%s' has no default in defaults/main.yml and is not required" % (role, name))
        if "default" in opt and name in defaults and opt["default"] != defaults[name]:
            problems.append("%s: option '%s' default %r differs from defaults/main.yml %r"
                            % (role, name, opt["default"], defaults[name]))
        if not opt.get("description"):
            problems.append("%s: option '%s' has no description" % (role, name))
    return problems


def main():
    roles_dir = os.path.join(ROOT, "roles")
    roles = sorted(d for d in os.listdir(roles_dir) if os.path.isdir(os.path.join(roles_dir, d))) \
        if os.path.isdir(roles_dir) else []
    problems = []
    for role in roles:
        problems.extend(check_role(os.path.join(roles_dir, role)))
    for p in problems:
        print(p)
    print("argument specs: %d role(s) checked, %d problem(s)" % (len(roles), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
