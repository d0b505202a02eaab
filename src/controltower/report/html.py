"""The HTML report: one self-contained page (inline CSS and SVG, no script, no fetches).

It leads with the verdict and the work: which gate holds the release, then the
fixes in the order to do them, each with the exact lines to change; scores by
category and every finding follow. It prints cleanly and follows the reader's
light or dark preference.
"""

from __future__ import annotations

import html
import math
from collections import Counter

from controltower import __version__
from controltower.checks.model import GATE_NAMES, Category, Finding, Gate, Severity, Status
from controltower.checks.runner import CheckRun

ORDER = [
    Status.FAIL,
    Status.ERROR,
    Status.WARN,
    Status.ADVICE,
    Status.WAIVED,
    Status.PASS,
    Status.SKIP,
]
SEVERITY = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW]
LABEL = {
    Status.FAIL: "Fail",
    Status.ERROR: "Error",
    Status.WARN: "Warning",
    Status.ADVICE: "Advice",
    Status.WAIVED: "Waived",
    Status.PASS: "Pass",
    Status.SKIP: "Not applicable",
}

CSS = """
:root{--bg:#f5f6f8;--card:#fff;--ink:#17202c;--muted:#5b6675;--line:#e2e6eb;--soft:#f0f2f5;
--red:#c62828;--red-bg:#fdecec;--amber:#9a6200;--amber-bg:#fff4d6;--blue:#0b62c4;--blue-bg:#e3f0ff;
--green:#1b7d3a;--green-bg:#e2f5e8;--violet:#6b3fc4;--violet-bg:#efe8fd;--code:#0f1720;--code-ink:#e8edf3}
@media (prefers-color-scheme:dark){:root{--bg:#0f1319;--card:#161c24;--ink:#e4e9ef;--muted:#9aa6b4;
--line:#29323d;--soft:#1d242e;--red:#ff8a80;--red-bg:#3a1d1d;--amber:#ffcf66;--amber-bg:#3a2f14;
--blue:#8cc2ff;--blue-bg:#16283d;--green:#7fd99a;--green-bg:#163023;--violet:#c6a8ff;--violet-bg:#2a2140;
--code:#0a0e13}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1040px;margin:0 auto;padding:36px 22px 60px}
a{color:inherit}
h1{font-size:28px;line-height:1.2;margin:0}
h2{font-size:19px;margin:38px 0 12px}
h3{font-size:16px;margin:0}
code,pre{font:13px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.meta{color:var(--muted);margin-top:6px}
.meta span+span:before{content:"·";margin:0 8px;color:var(--line)}
.hero{display:grid;grid-template-columns:auto 1fr;gap:28px;align-items:center;background:var(--card);
border:1px solid var(--line);border-radius:16px;padding:24px 28px;margin:22px 0}
.ring text{font-weight:700;fill:var(--ink)}
.verdict{font-size:22px;font-weight:700;margin:0 0 6px}
.verdict.go{color:var(--green)}.verdict.nogo{color:var(--red)}
.counts{display:flex;flex-wrap:wrap;gap:8px;margin-top:12px}
.pill{display:inline-flex;align-items:center;gap:6px;border-radius:999px;padding:2px 10px;font-size:13px;font-weight:600;white-space:nowrap}
.fail,.error{background:var(--red-bg);color:var(--red)}.warn{background:var(--amber-bg);color:var(--amber)}
.advice{background:var(--blue-bg);color:var(--blue)}.pass{background:var(--green-bg);color:var(--green)}
.waived{background:var(--violet-bg);color:var(--violet)}.skip{background:var(--soft);color:var(--muted)}
.gates{display:grid;grid-template-columns:repeat(3,1fr);gap:12px}
.gate{background:var(--card);border:1px solid var(--line);border-radius:14px;padding:14px 16px;border-top:4px solid var(--green)}
.gate.nogo{border-top-color:var(--red)}
.gate .n{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.06em}
.gate .v{font-size:20px;font-weight:800;margin:2px 0}.gate.go .v{color:var(--green)}.gate.nogo .v{color:var(--red)}
.gate ul{list-style:none;padding:0;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:6px}
.gate li a{text-decoration:none}
.todo{background:var(--card);border:1px solid var(--line);border-radius:14px;overflow:hidden}
.todo ol{margin:0;padding:0;list-style:none;counter-reset:step}
.todo li{display:grid;grid-template-columns:34px 1fr auto;gap:12px;padding:12px 16px;border-top:1px solid var(--line);counter-increment:step}
.todo li:first-child{border-top:0}
.todo li:before{content:counter(step);width:26px;height:26px;border-radius:50%;background:var(--soft);color:var(--muted);
display:grid;place-items:center;font-size:13px;font-weight:700}
.todo .what{font-weight:600}.todo .how{color:var(--muted);font-size:14px}
.todo .tags{display:flex;gap:6px;align-items:start}
.cats{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:12px}
.cat{background:var(--card);border:1px solid var(--line);border-radius:14px;padding:14px 16px}
.cat .top{display:flex;justify-content:space-between;align-items:baseline}
.cat .pct{font-size:22px;font-weight:800}
.bar{height:8px;border-radius:6px;background:var(--soft);overflow:hidden;margin:8px 0 6px}
.bar i{display:block;height:100%;border-radius:6px}
.cat small{color:var(--muted)}
.finding{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--line);border-radius:12px;margin:10px 0}
.finding.s-fail,.finding.s-error{border-left-color:var(--red)}.finding.s-warn{border-left-color:var(--amber)}
.finding.s-advice{border-left-color:var(--blue)}.finding.s-waived{border-left-color:var(--violet)}
.finding.s-pass{border-left-color:var(--green)}
.finding>summary{list-style:none;cursor:pointer;padding:12px 16px;display:grid;grid-template-columns:auto 1fr auto;gap:12px;align-items:center}
.finding>summary::-webkit-details-marker{display:none}
.finding>summary .id{color:var(--muted);font-size:13px}
.finding .body{padding:0 16px 14px 16px;border-top:1px solid var(--line)}
.finding .msg{margin:12px 0 8px}
.facts{display:flex;flex-wrap:wrap;gap:6px 16px;color:var(--muted);font-size:13px;margin:6px 0}
.why{background:var(--blue-bg);color:var(--blue);border-radius:8px;padding:8px 12px;margin:10px 0;font-size:14px}
.details{margin:8px 0;padding-left:18px}.details li{margin:2px 0}
.fix{margin-top:12px}
.fix .label{font-weight:700;margin-bottom:6px}
pre{background:var(--code);color:var(--code-ink);padding:12px 14px;border-radius:10px;overflow:auto;margin:6px 0 0;white-space:pre}
.grid2{display:grid;grid-template-columns:1fr;gap:0}
.na{color:var(--muted)}
details.more>summary{cursor:pointer;color:var(--muted);margin:8px 0}
.skipped{columns:2;font-size:13px;color:var(--muted)}
footer{color:var(--muted);font-size:13px;margin-top:40px;border-top:1px solid var(--line);padding-top:14px}
@media (max-width:760px){.hero{grid-template-columns:1fr}.gates{grid-template-columns:1fr}.skipped{columns:1}}
@media print{body{background:#fff}main{padding:0}.finding,.gate,.cat,.hero,.todo{break-inside:avoid}
details{display:block}details>summary{display:block}details:not([open])>*:not(summary){display:block}}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


def _color(value: float | None) -> str:
    if value is None:
        return "var(--line)"
    if value >= 90:
        return "var(--green)"
    if value >= 60:
        return "var(--amber)"
    return "var(--red)"


def _anchor(check_id: str) -> str:
    return "f-" + check_id.replace(".", "-")


def _ring(value: float | None) -> str:
    """The overall readiness as a ring chart (inline SVG)."""
    radius, stroke = 52, 12
    circumference = 2 * math.pi * radius
    shown = 0.0 if value is None else max(0.0, min(value, 100.0))
    dash = circumference * shown / 100
    return (
        f'<svg class="ring" width="132" height="132" viewBox="0 0 132 132" role="img" '
        f'aria-label="readiness {_pct(value)}">'
        f'<circle cx="66" cy="66" r="{radius}" fill="none" stroke="var(--soft)" stroke-width="{stroke}"/>'
        f'<circle cx="66" cy="66" r="{radius}" fill="none" stroke="{_color(value)}" stroke-width="{stroke}" '
        f'stroke-linecap="round" stroke-dasharray="{dash:.1f} {circumference:.1f}" transform="rotate(-90 66 66)"/>'
        f'<text x="66" y="72" text-anchor="middle" font-size="28">{_pct(value)}</text>'
        f'<text x="66" y="92" text-anchor="middle" font-size="11" style="font-weight:500;fill:var(--muted)">ready</text>'
        "</svg>"
    )


def _verdict(run: CheckRun) -> tuple[str, str]:
    passed = [g for g, v in sorted(run.gates.items()) if v.passed]
    top = 0
    for gate in sorted(run.gates):
        if gate in passed:
            top = gate
        else:
            break
    requested = run.requested_gate
    if requested is not None:
        ok = run.passed
        word = "GO" if ok else "NO-GO"
        text = f"{word} for gate {requested}, {GATE_NAMES[Gate(requested)]}"
        return text, "go" if ok else "nogo"
    if top == max(run.gates):
        return "GO: every gate passes", "go"
    if top == 0:
        return f"NO-GO: gate 1, {GATE_NAMES[Gate.CORE]}, does not pass", "nogo"
    return f"Gate {top} passes; gate {top + 1}, {GATE_NAMES[Gate(top + 1)]}, does not", "nogo"


def _todo(run: CheckRun) -> list[Finding]:
    """What to fix, in order: blocking gate first, then severity."""
    open_ = [f for f in run.findings if f.status in (Status.FAIL, Status.ERROR, Status.WARN)]
    return sorted(
        open_,
        key=lambda f: (
            0 if f.status.blocks else 1,
            int(f.gate),
            SEVERITY.index(f.severity),
            f.id,
        ),
    )


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finding(finding: Finding, open_: bool) -> str:
    status = finding.status.value
    facts = [
        f"gate {int(finding.gate)}",
        f"severity {finding.severity.value}",
        finding.category.value,
        finding.kind,
    ]
    if finding.location:
        facts.append(f"at <code>{_e(finding.location)}</code>")
    if finding.hadolint:
        facts.append(f"hadolint {_e(finding.hadolint)}")
    parts = [
        f'<details class="finding s-{status}" id="{_anchor(finding.id)}"{" open" if open_ else ""}>',
        f'<summary><span class="pill {status}">{LABEL[finding.status]}</span>'
        f'<span><h3>{_e(finding.title)}</h3><span class="id"><code>{_e(finding.id)}</code>'
        f"{'' if open_ else ' · ' + _e(_short(finding.message))}</span></span>"
        f'<span class="id">gate {int(finding.gate)}</span></summary>',
        '<div class="body">',
        f'<p class="msg">{_e(finding.message)}</p>',
        '<div class="facts">' + "".join(f"<span>{f}</span>" for f in facts) + "</div>",
    ]
    if finding.status is Status.ADVICE and finding.advice_reason:
        parts.append(
            f'<div class="why"><b>Advice, not a failure:</b> {_e(finding.advice_reason)}.</div>'
        )
    if finding.details and not (
        len(finding.details) == 1 and finding.details[0] in finding.message
    ):
        parts.append(
            '<ul class="details">'
            + "".join(f"<li><code>{_e(d)}</code></li>" for d in finding.details[:40])
            + (
                f"<li>… and {len(finding.details) - 40} more</li>"
                if len(finding.details) > 40
                else ""
            )
            + "</ul>"
        )
    if finding.fix and finding.status is not Status.PASS:
        where = f" in <code>{_e(finding.fix.file)}</code>" if finding.fix.file else ""
        parts.append(
            f'<div class="fix"><div class="label">Fix{where}</div><div>{_e(finding.fix.summary)}</div>'
        )
        if finding.fix.lines:
            parts.append(f"<pre>{_e(finding.fix.lines)}</pre>")
        parts.append("</div>")
    parts.append("</div></details>")
    return "\n".join(parts)


def render_html(run: CheckRun) -> str:
    counts = Counter(f.status for f in run.findings)
    verdict, klass = _verdict(run)
    where = [
        f"<span>{_e(run.environment)}</span>" if run.environment else "",
        f"<span>target {_e(run.target)}</span>",
        f"<span>{_e(run.url)}</span>" if run.url else "<span>static checks only</span>",
        f"<span>{_e(run.started_at.strftime('%Y-%m-%d %H:%M UTC'))}</span>",
    ]
    pills = "".join(
        f'<span class="pill {s.value}">{counts[s]} {LABEL[s].lower()}</span>'
        for s in ORDER
        if counts[s] and s is not Status.SKIP
    )
    graded = next(
        (f for f in run.findings if f.id == "security.headers" and "grade" in f.data), None
    )
    if graded is not None:
        pills += f'<span class="pill skip">headers {_e(graded.data["grade"])} ({_e(graded.data["score"])})</span>'

    gates = []
    for gate, verdict_ in sorted(run.gates.items()):
        state = "go" if verdict_.passed else "nogo"
        chips = "".join(
            f'<li><a class="pill fail" href="#{_anchor(i)}">{_e(i)}</a></li>'
            for i in verdict_.failing
        ) or "".join(f"<li>blocked by gate {b}</li>" for b in verdict_.blocked_by)
        gates.append(
            f'<div class="gate {state}"><div class="n">Gate {gate}</div>'
            f'<div class="v">{"GO" if verdict_.passed else "NO-GO"}</div>'
            f"<div>{_e(verdict_.name)}</div>{f'<ul>{chips}</ul>' if chips else ''}</div>"
        )

    todo = _todo(run)
    todo_html = ""
    if todo:
        items = []
        for finding in todo:
            how = finding.fix.summary if finding.fix else finding.message
            items.append(
                f'<li><div><div class="what"><a href="#{_anchor(finding.id)}">{_e(finding.title)}</a></div>'
                f'<div class="how">{_e(how)}</div></div>'
                f'<div class="tags"><span class="pill {finding.status.value}">{LABEL[finding.status]}</span>'
                f'<span class="pill skip">gate {int(finding.gate)}</span></div></li>'
            )
        todo_html = (
            f"<h2>What to fix, in order ({len(todo)})</h2>"
            f'<div class="todo"><ol>{"".join(items)}</ol></div>'
        )

    cats = []
    for category in Category:
        value = run.score.categories.get(category.value)
        mine = [f for f in run.findings if f.category is category and f.status.counted]
        bad = sum(1 for f in mine if f.status.blocks)
        note = (
            f"{len(mine)} check{'s' if len(mine) != 1 else ''}"
            + (f", {bad} failing" if bad else "")
            if mine
            else "nothing checked here"
        )
        cats.append(
            f'<div class="cat"><div class="top"><b>{_e(category.value.title())}</b>'
            f'<span class="pct" style="color:{_color(value)}">{_pct(value)}</span></div>'
            f'<div class="bar"><i style="width:{0 if value is None else value:.0f}%;background:{_color(value)}"></i></div>'
            f"<small>{note}</small></div>"
        )

    sections = []
    for category in Category:
        group = sorted(
            (f for f in run.findings if f.category is category and f.status is not Status.SKIP),
            key=lambda f: (ORDER.index(f.status), int(f.gate), f.id),
        )
        if not group:
            continue
        problems = [f for f in group if f.status not in (Status.PASS, Status.WAIVED)]
        fine = [f for f in group if f.status in (Status.PASS, Status.WAIVED)]
        body = "\n".join(_finding(f, True) for f in problems)
        if fine:
            body += (
                f'<details class="more"{" open" if not problems else ""}><summary>{len(fine)} passed or waived</summary>'
                + "\n".join(_finding(f, False) for f in fine)
                + "</details>"
            )
        sections.append(f"<h2>{_e(category.value.title())}</h2>{body}")
    skipped = [f for f in run.findings if f.status is Status.SKIP]
    if skipped:
        listed = "".join(f"<li><code>{_e(f.id)}</code>: {_e(f.message)}</li>" for f in skipped)
        sections.append(
            f'<h2>Not applicable here</h2><details class="more"><summary>{len(skipped)} checks skipped, and why</summary>'
            f'<ul class="skipped">{listed}</ul></details>'
        )

    title = f"Readiness of {run.service}" + (f" ({run.environment})" if run.environment else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{_e(title)}: {_e(verdict)}</title><style>{CSS}</style></head>
<body><main>
<h1>{_e(title)}</h1>
<div class="meta">{"".join(w for w in where if w)}</div>
<section class="hero">{_ring(run.score.overall)}
<div><p class="verdict {klass}">{_e(verdict)}</p>
<div>Readiness is the share of check weight earned (critical 10, high 5, medium 3, low 1; a warning earns half). Advice and checks that do not apply here are not counted.</div>
<div class="counts">{pills}</div></div></section>
<div class="gates">{"".join(gates)}</div>
{todo_html}
<h2>Readiness by category</h2><div class="cats">{"".join(cats)}</div>
{"".join(sections)}
<footer>controltower {_e(__version__)} · tower check · run {_e(run.id)} · gates are cumulative: gate N needs gates 1 to N.</footer>
</main></body></html>
"""
