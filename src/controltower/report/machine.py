"""Reports for machines: JSON, JUnit XML and SARIF 2.1.0."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from controltower import __version__
from controltower.checks.base import registered
from controltower.checks.model import Finding, Status
from controltower.checks.runner import CheckRun

SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
_LEVEL = {
    Status.FAIL: "error",
    Status.ERROR: "error",
    Status.WARN: "warning",
    Status.ADVICE: "note",
    Status.WAIVED: "warning",
}
# An outside tool's level (hadolint's, an advisory's severity) as a SARIF level.
_ITEM_LEVEL = {
    "error": "error",
    "critical": "error",
    "high": "error",
    "warning": "warning",
    "moderate": "warning",
    "medium": "warning",
}


def to_json(run: CheckRun) -> str:
    return json.dumps(run.to_dict(), indent=2, default=str) + "\n"


def _fix_text(finding: Finding) -> str:
    if finding.fix is None:
        return ""
    where = f" in {finding.fix.file}" if finding.fix.file else ""
    text = f"Fix{where}: {finding.fix.summary}"
    return text + (f"\n{finding.fix.lines}" if finding.fix.lines else "")


def to_junit(run: CheckRun) -> str:
    """One testsuite per gate, one testcase per check; advice and skips are skipped cases."""
    root = ET.Element("testsuites", name=f"tower check {run.service}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for gate, verdict in run.gates.items():
        findings = [f for f in run.findings if int(f.gate) == gate]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"gate {gate}: {verdict.name}",
            timestamp=run.started_at.isoformat(),
        )
        counts = {"tests": len(findings), "failures": 0, "errors": 0, "skipped": 0}
        for finding in findings:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"tower.{finding.category.value}",
                name=finding.id,
                time=f"{finding.duration:.3f}",
            )
            body = "\n".join(filter(None, [finding.message, *finding.details, _fix_text(finding)]))
            if finding.status is Status.FAIL:
                counts["failures"] += 1
                element = ET.SubElement(
                    case, "failure", message=finding.message, type=finding.severity.value
                )
                element.text = body
            elif finding.status is Status.ERROR:
                counts["errors"] += 1
                element = ET.SubElement(case, "error", message=finding.message, type="error")
                element.text = body
            elif finding.status in (Status.SKIP, Status.ADVICE):
                counts["skipped"] += 1
                reason = finding.advice_reason or finding.message
                ET.SubElement(case, "skipped", message=f"{finding.status.value}: {reason}")
            else:
                out = ET.SubElement(case, "system-out")
                out.text = f"{finding.status.value}: {finding.message}"
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{sum(f.duration for f in findings):.3f}")
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _item_results(
    finding: Finding, rules: list[dict[str, Any]], index: dict[str, int]
) -> list[dict[str, Any]]:
    """One result per item of an outside tool (a hadolint finding, an advisory), under the
    tool's own rule id, suppressed like its finding when that is waived."""
    results = []
    for item in finding.items:
        if item.rule not in index:
            index[item.rule] = len(rules)
            rule: dict[str, Any] = {
                "id": item.rule,
                "shortDescription": {"text": item.message.split("\n", 1)[0][:200] or item.rule},
                "properties": {"tool": item.tool, "check": finding.id},
            }
            if item.url:
                rule["helpUri"] = item.url
            rules.append(rule)
        physical: dict[str, Any] = {
            "artifactLocation": {"uri": item.file or "tower.toml", "uriBaseId": "SRCROOT"}
        }
        if item.line:
            physical["region"] = {"startLine": item.line}
        result: dict[str, Any] = {
            "ruleId": item.rule,
            "ruleIndex": index[item.rule],
            "level": _ITEM_LEVEL.get(item.level, "note"),
            "message": {"text": f"{item.message} ({item.tool} {item.level})"},
            "locations": [{"physicalLocation": physical}],
            "partialFingerprints": {
                "towerCheck/v1": f"{finding.id}:{item.rule}:{item.file}:{item.line}"
            },
            "properties": {"tool": item.tool, "level": item.level, "check": finding.id},
        }
        if finding.status is Status.WAIVED:
            result["suppressions"] = [{"kind": "external", "justification": finding.message}]
        results.append(result)
    return results


def to_sarif(run: CheckRun) -> str:
    known = registered()
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for finding in run.findings:
        if finding.id in index:
            continue
        index[finding.id] = len(rules)
        cls = known.get(finding.id)
        rule: dict[str, Any] = {
            "id": finding.id,
            "name": "".join(part.title() for part in finding.id.replace("_", ".").split(".")),
            "shortDescription": {"text": finding.title},
            "defaultConfiguration": {
                "level": "error" if finding.severity.value in ("critical", "high") else "warning"
            },
            "properties": {
                "category": finding.category.value,
                "gate": int(finding.gate),
                "severity": finding.severity.value,
                "tags": [finding.category.value, f"gate-{int(finding.gate)}"],
            },
        }
        if finding.hadolint:
            rule["properties"]["hadolint"] = finding.hadolint.split(",")
        if cls is not None and cls.__doc__:
            rule["fullDescription"] = {"text": " ".join(cls.__doc__.split())}
        if cls is not None and cls.remedy:
            rule["help"] = {
                "text": cls.remedy,
                "markdown": f"**Fix:** {cls.remedy}\n\nSee `tower check --list` and docs/check.md.",
            }
        rules.append(rule)
    results = []
    for finding in run.findings:
        if finding.status not in _LEVEL:
            continue
        text = finding.message
        if finding.advice_reason:
            text += f" (advice: {finding.advice_reason})"
        fix = _fix_text(finding)
        if fix:
            text += "\n" + fix
        result: dict[str, Any] = {
            "ruleId": finding.id,
            "ruleIndex": index[finding.id],
            "level": _LEVEL[finding.status],
            "message": {"text": text},
            "properties": {"status": finding.status.value, "details": list(finding.details)},
        }
        if finding.status is Status.WAIVED:
            result["suppressions"] = [{"kind": "external", "justification": finding.message}]
        file = (
            finding.location.file
            if finding.location is not None
            else (finding.fix.file if finding.fix and finding.fix.file else "")
        )
        if file:
            physical: dict[str, Any] = {"artifactLocation": {"uri": file, "uriBaseId": "SRCROOT"}}
            if finding.location is not None and finding.location.line:
                physical["region"] = {"startLine": finding.location.line}
            result["locations"] = [{"physicalLocation": physical}]
        elif finding.kind == "live" and run.url:
            result["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": run.url}}}]
        else:
            result["locations"] = [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": "tower.toml", "uriBaseId": "SRCROOT"}
                    }
                }
            ]
        # Stable across runs, so code scanning tracks one alert per check and place.
        result["partialFingerprints"] = {"towerCheck/v1": f"{finding.id}:{file or run.url or ''}"}
        results.append(result)
        results.extend(_item_results(finding, rules, index))
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "controltower",
                        "version": __version__,
                        "informationUri": "https://github.com/controltower/controltower",
                        "rules": rules,
                    }
                },
                "automationDetails": {"id": f"tower-check/{run.service}/{run.id}"},
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "startTimeUtc": run.started_at.isoformat().replace("+00:00", "Z"),
                        "endTimeUtc": run.finished_at.isoformat().replace("+00:00", "Z"),
                    }
                ],
                "results": results,
                "properties": {
                    "score": run.score.to_dict(),
                    "gates": {str(g): v.to_dict() for g, v in run.gates.items()},
                },
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"
