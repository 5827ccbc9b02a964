#!/usr/bin/env python3
"""Validates SBOMs with their formats' own tools: CycloneDX documents with
cyclonedx-python-lib's strict JSON schema validator (1.6), SPDX documents with spdx-tools'
parser and validator (2.3). Prints `FILE: valid` per file; exits 1 when one is not.
Usage: validate_sbom.py FILE... (scripts/setup installs both into build/pyvenv)"""
import json, sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

failed = False
for path in sys.argv[1:]:
    with open(path) as f:
        text = f.read()
    doc = json.loads(text)
    if doc.get("bomFormat") == "CycloneDX":
        error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
        problems = [] if error is None else [str(error).splitlines()[0]]
    elif "spdxVersion" in doc:
        problems = [m.validation_message for m in validate_full_spdx_document(parse_file(path))]
    else:
        problems = ["neither CycloneDX nor SPDX"]
    if problems:
        failed = True
        print(f"{path}: invalid: " + "; ".join(problems))
    else:
        print(f"{path}: valid")
sys.exit(1 if failed else 0)
