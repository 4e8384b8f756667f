"""The docs quote the bench and the code as they are, not by hand: the tables the bench wrote (bench/results), the
figures of its result files and of tiny-gpt's training record, the table of choices the code reads, and every
environment variable. The README stays a short front door, and every relative link leads somewhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
RESULTS = ROOT / "bench" / "results"

# where each table quoted from bench/results lives
QUOTED_IN = {"bench.md": "docs/performance.md", "umap_settings.md": "docs/performance.md",
             "normalisation.md": "docs/method.md", "normalisation_unseen.md": "docs/method.md",
             "picture_candidates.md": "docs/method.md", "picture_candidates_unseen.md": "docs/method.md"}


def doc(name: str) -> str:
    """The text of README.md or of docs/NAME."""
    return README.read_text() if name == "README.md" else (DOCS / name).read_text()


def doc_files() -> list[Path]:
    """README.md and every docs/*.md."""
    return [README, *sorted(DOCS.glob("*.md"))]


def outside_code(text: str) -> list[str]:
    """The lines of a markdown text that are not inside a fenced code block."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def section(text: str, heading: str) -> str:
    """The section whose heading line starts with `heading`, up to the next heading of its level or above."""
    level = len(heading.split(" ", 1)[0])
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith(heading)]
    assert len(starts) == 1, f"{heading!r} is not one heading"
    after = (i for i in range(starts[0] + 1, len(lines)) if re.match(rf"#{{1,{level}}} ", lines[i]))
    return "".join(lines[starts[0]:next(after, len(lines))])


def test_readme_is_a_short_front_door_linking_every_doc():
    readme = README.read_text()
    assert len(readme.splitlines()) <= 250, "README.md is over 250 lines: move depth to docs/"
    assert "make serve" in readme and "make test" in readme
    for path in sorted(DOCS.glob("*.md")):
        assert f"](docs/{path.name})" in readme, f"the README does not link docs/{path.name}"


def slugs(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a markdown file."""
    found, seen = set(), {}
    for line in outside_code(path.read_text()):
        match = re.match(r"#{1,6} (.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return found


def test_every_relative_link_leads_to_a_file_and_heading_that_exist():
    checked = 0
    for path in doc_files():
        text = re.sub(r"`[^`\n]*`", "", "\n".join(outside_code(path.read_text())))  # code spans are not links
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            assert linked.exists(), f"{path.relative_to(ROOT)} links {target}: no such file"
            if anchor and linked.suffix == ".md":
                assert anchor in slugs(linked), f"{path.relative_to(ROOT)} links {target}: no such heading"
            checked += 1
    assert checked >= 20  # the README's read-more list alone has ten


def quoted_tables() -> dict[str, list[tuple[str, str]]]:
    """Every `<!-- NAME.md -->` ... `<!-- /NAME.md -->` block of the README and docs/: NAME.md -> (file, text)."""
    blocks: dict[str, list[tuple[str, str]]] = {}
    for path in doc_files():
        text = path.read_text()
        found = re.findall(r"<!-- ([^\s/]\S*\.md) -->\n(.*?)<!-- /\1 -->", text, flags=re.S)
        opened = re.findall(r"<!-- ([^\s/]\S*\.md) -->", text)
        assert [name for name, _ in found] == opened, f"{path.name}: a quoted table lacks its closing marker"
        for name, quoted in found:
            blocks.setdefault(name, []).append((path.relative_to(ROOT).as_posix(), quoted))
    return blocks


def test_performance_table_is_the_bench_output():
    performance = doc("performance.md")
    quoted = performance.split("<!-- bench.md -->\n", 1)[1].split("<!-- /bench.md -->", 1)[0]
    assert quoted == (RESULTS / "bench.md").read_text()
    assert "| UMAP matrix embedded" in quoted


def test_every_quoted_bench_table_is_the_bench_output():
    """Each table the docs quote from bench/results is that file, as the bench wrote it; every one is quoted."""
    blocks = quoted_tables()
    assert set(blocks) == {path.name for path in RESULTS.glob("*.md")}
    assert set(QUOTED_IN) <= set(blocks)
    for name, quotes in blocks.items():
        for where, quoted in quotes:
            assert quoted == (RESULTS / name).read_text(), (name, where)
        if name in QUOTED_IN:
            assert QUOTED_IN[name] in {where for where, _ in quotes}, (name, QUOTED_IN[name])
    assert "| fit | PCA | 72 |" in blocks["normalisation.md"][0][1]
    assert "| any (attention unchanged) | picture fitted to attention | 72 |" in blocks["normalisation_unseen.md"][0][1]


def test_load_table_is_the_bench_output():
    table = section(doc("reliability.md"), "## Load")
    measured = json.loads((RESULTS / "load.json").read_text())
    for run in measured["runs"]:
        row = f"| {run['views']:,} | {run['requests_per_s']} | **{run['errors']}** | " \
              f"{run['request_p50_ms']:.0f} / **{run['request_p95_ms']:.0f} ms** | " \
              f"{run['view_p50_ms']:,.0f} / {run['view_p95_ms']:,.0f} ms |"
        assert row in table, row
    memory = measured["memory"]
    assert f"{memory['rss_before_mb']} → {memory['rss_after_mb']} MB (**+{memory['growth_mb']} MB**)" in table


def test_cold_start_figures_are_the_bench_output():
    """The README's first-view times are bench/cold_start.py's medians."""
    measured = json.loads((RESULTS / "cold_start.json").read_text())
    readme = " ".join(doc("README.md").split())
    assert f"first picture is drawn **{measured['preloaded_first_view_s']:.1f} s** after the server starts" in readme
    assert f"{measured['not_preloaded_first_view_s']:.1f} s when the model waits for the first request" in readme


def test_cold_start_section_is_the_bench_output():
    from dashboard.shell.widgets import POLL_MS

    measured = json.loads((RESULTS / "cold_start.json").read_text())
    said = " ".join(section(doc("performance.md"), "## Cold start").split())
    assert f"{measured['preloaded_first_view_s']} s with the first worker preloading" in said
    assert f"{measured['not_preloaded_first_view_s']} s when the model waits" in said
    assert f"(every {POLL_MS} ms)" in said


def test_memory_table_is_the_bench_output():
    table = section(doc("performance.md"), "## Memory and large corpora")
    runs = {run["variant"]: run for run in json.loads((RESULTS / "memory.json").read_text())}
    plain, streaming, in_memory = runs["plain"], runs["streaming"], runs["in-memory"]
    assert f"| {plain['seconds']} | {plain['peak_above_load_mb']:,} MB |" in table
    assert f"| **{streaming['seconds']} ({streaming['seconds'] / plain['seconds']:.2f}x)** | " \
           f"**{streaming['peak_above_load_mb']:,} MB** |" in table
    assert f"| {in_memory['seconds']} | {in_memory['peak_above_load_mb']:,} MB |" in table
    assert f"({streaming['tokens']:,} tokens," in table


def test_memory_section_states_the_extraction_constants():
    """The chunk, spool and head-batch sizes the memory section states are extract.py's own."""
    from workers.models import extract

    said = " ".join(section(doc("performance.md"), "## Memory and large corpora").split())
    assert f"tokenises the corpus {extract.TOKENIZE_CHUNK} texts at a time" in said
    assert f"would exceed {extract.SPOOL_MEMORY_BYTES // 2**20} MB in all" in said
    assert f"({extract.HEAD_BATCH_BYTES // 2**20} MB at most)" in said


def test_big_corpus_extraction_keeps_to_the_memory_target_the_docs_state():
    """bench/big_corpus.py's recorded peak is within the 500 MB the performance page says the extraction keeps to."""
    measured = json.loads((RESULTS / "big_corpus.json").read_text())["extraction"]
    said = " ".join(section(doc("performance.md"), "## A 100,000-token corpus").split())
    assert "The extraction keeps to its target of a peak at most 500 MB above the loaded model" in said
    assert measured["peak_above_load_mb"] <= 500


def test_big_corpus_drawing_keeps_to_the_time_target_the_docs_state():
    """bench/big_corpus.py's recorded drawing is within the 3 s the performance page says it keeps to."""
    browser = json.loads((RESULTS / "big_corpus.json").read_text())["browser"]
    said = " ".join(section(doc("performance.md"), "## A 100,000-token corpus").split())
    assert "the picture is drawn within 3 s of navigation" in said and browser["drawn_s"] <= 3
    assert f"({browser['first_open_s']} s in this run, `first_open_s`" in said


def test_worker_speed_ups_are_the_bench_output():
    team = json.loads((RESULTS / "team.json").read_text())
    one, two = team["configs"]
    scaling = section(doc("deployment.md"), "## Workers scale the matrix")
    assert f"{one['heads']} heads took {one['seconds']} s with one worker ({one['seconds_per_head']} s/head) and " \
           f"{two['seconds']} s with two ({two['seconds_per_head']} s/head): a **{team['speedup']:.2f}x**" \
           in " ".join(scaling.split())
    local = json.loads((RESULTS / "local_workers.json").read_text())
    performance = " ".join(doc("performance.md").split())
    assert f"{local['speedup']:.2f}x with two local workers; team mode {team['speedup']:.2f}x with two Celery" \
           in performance


def test_fan_out_table_is_the_bench_output():
    """docs/scale.md's fan-out table is bench/team.py's, and two workers beat one and four on two cores."""
    fanout = json.loads((RESULTS / "team_fanout.json").read_text())
    table = (RESULTS / "team_fanout.md").read_text().strip()
    assert f"<!-- team_fanout.md -->\n{table}\n<!-- /team_fanout.md -->" in doc("scale.md")
    seconds = {config["workers"]: config["seconds"] for config in fanout["configs"]}
    assert seconds[2] < seconds[1] and seconds[2] < seconds[4] and fanout["cores"] == 2
    for config in fanout["configs"]:
        assert f"| {config['workers']} | {config['seconds']} s | {config['seconds_per_head']} |" in table
    one, two = json.loads((RESULTS / "team.json").read_text())["configs"]
    assert f"took {one['seconds']} and {two['seconds']} s)" in " ".join(doc("scale.md").split())


def test_readme_table_of_choices_is_the_table_the_code_reads():
    """Values, labels, defaults and preview notes in the README are the table of choices'
    own (workers.contracts.choices: one fact, one place)."""
    from workers.contracts.choices import markdown_table

    assert markdown_table() in section(doc("README.md"), "### The choices")


def test_architecture_table_of_stored_results_is_the_table_the_code_reads():
    """Each stored result's inputs, version and function in docs/architecture.md are STORED_RESULTS' own."""
    from workers.pipeline.keys import stored_results_table

    quoted = re.search(r"<!-- stored results -->\n(.*?)\n<!-- /stored results -->", doc("architecture.md"), re.S)
    assert quoted is not None and quoted.group(1) == stored_results_table()


def test_every_environment_variable_is_in_the_configuration_table():
    """Each QK_ATLAS_* name the code or the compose file uses is a row of docs/configuration.md."""
    sources = [*ROOT.glob("workers/**/*.py"), *ROOT.glob("dashboard/**/*.py"), ROOT / "docker-compose.yml"]
    names = {name for path in sources for name in re.findall(r"QK_ATLAS_[A-Z][A-Z_]*[A-Z]", path.read_text())}
    assert {"QK_ATLAS_CACHE_DIR", "QK_ATLAS_REDIS_URL", "QK_ATLAS_BIND"} <= names
    configuration = doc("configuration.md")
    for name in sorted(names):
        assert f"\n| `{name}` |" in configuration, f"{name} is not in docs/configuration.md"


def test_tiny_gpt_figures_are_its_training_record():
    """The tiny-gpt section states what training.json records: time, steps, and the heads' scores."""
    section_text = section(doc("models.md"), "## The bundled tiny-gpt")
    record = json.loads((ROOT / "workers" / "data" / "tiny_gpt" / "training.json").read_text())
    heads = record["heads"]
    assert f"**{record['train_seconds']:,.0f} s on this 2-core machine**" in section_text
    assert f"{record['settings']['steps']:,} AdamW steps" in section_text
    assert f"→ {record['final_loss']} over the last 100" in section_text
    assert "0.8 at every band" in section_text
    for band, scores in heads["previous_token_by_band"].items():
        first, last = band.split("-")
        assert scores[0][2] >= 0.8
        assert f"{scores[0][2]:.2f} at {'positions ' if first == '1' else ''}{first}–{last}" in section_text, band
    assert f"{heads['previous_token'][0][2]:.2f} over the first 64 corpus texts" in section_text
    for layer, head, key in ((1, 1, "induction"), (1, 2, "induction"), (1, 3, "induction"),
                             (1, 1, "induction_corpus_words"), (1, 2, "induction_corpus_words"),
                             (1, 3, "induction_corpus_words")):
        assert f"{heads[key][layer][head]:.3g} (L{layer}H{head})" in section_text, (key, layer, head)


TINY_VIT_RELATIONS = {"same_patch": "same patch", "neighbours": "4 neighbours", "same_row": "same row",
                      "same_column": "same column", "left": "left", "right": "right", "above": "above",
                      "below": "below", "cls": "CLS", "ink": "ink", "cls_to_ink": "CLS → ink"}


def test_tiny_vit_figures_are_its_training_record():
    """The tiny-vit section and the README state what its training.json records: time, steps, accuracy beside
    the majority class, every head's share of attention on each relation beside the uniform one, and the heads
    that give a relation the most (or the least)."""
    text = section(doc("models.md"), "## The bundled tiny-vit")
    said = " ".join(text.split())
    record = json.loads((ROOT / "workers" / "data" / "tiny_vit" / "training.json").read_text())
    heads, settings = record["heads"], record["settings"]
    assert f"**{record['train_seconds']:,.0f} s on this 2-core machine**" in said
    assert f"({record['cpu_seconds']:,.0f} s of CPU time;" in said
    assert f"{settings['steps']:,} AdamW steps of {settings['batch_size']} images" in said
    assert f"{record['parameters']:,} parameters" in said
    assert f"{record['loss_every_50'][0]} over the first 50 steps → {record['final_loss']} over the last 50" in said
    assert f"{record['train_images']:,} for training and {record['test_images']} held out" in said
    assert f"**{record['test_accuracy']:.1%}** of the {record['test_images']} held-out digits" in said
    assert f"({record['train_accuracy']:.1%} of the training digits), against {record['majority_baseline']:.1%} " \
           "for always answering the most common digit" in said
    assert list(TINY_VIT_RELATIONS) == record["relations"]
    assert "| head | " + " | ".join(TINY_VIT_RELATIONS.values()) + " |\n" in text
    assert "| uniform | " + " | ".join(f"{heads['uniform'][name]:.3f}" for name in TINY_VIT_RELATIONS) + " |\n" \
        in text
    layers, per_layer = len(heads["shares"]["cls"]), len(heads["shares"]["cls"][0])
    for layer in range(layers):
        for head in range(per_layer):
            row = " | ".join(cell(heads, name, layer, head) for name in TINY_VIT_RELATIONS)
            assert f"| L{layer}H{head} | {row} |\n" in text, (layer, head)
    found = record["strongest_heads"]
    quoted = [found[name]["most"] for name in TINY_VIT_RELATIONS if name not in ("left", "right", "below", "cls")]
    quoted += [found["cls_to_ink"]["least"], found["cls"]["least"]]
    for head in quoted:
        assert f"{head['head']} gives {head['share']:.3f} ({head['times_uniform']:.2f}x uniform)" in said, head
    assert f"(and {found['below']['least']['share']:.3f} below it)" in said
    assert found["above"]["most"]["head"] == found["below"]["least"]["head"]
    assert f"none gives it more than {found['cls']['most']['share']:.3f}" in said
    assert "every head of layer 2 at least 0.8" in said and min(heads["shares"]["cls_to_ink"][2]) >= 0.8
    readme = " ".join(section(doc("README.md"), "## Models and corpora").split())
    best = found["cls_to_ink"]["most"]
    assert f"{record['test_accuracy']:.1%} of held-out digits, against {record['majority_baseline']:.1%}" in readme
    assert f"{best['head']}, gives {best['share']:.3f} of its attention to the ink" in readme


def cell(heads: dict, relation: str, layer: int, head: int) -> str:
    """One share of the tiny-vit heads table: 3 digits, bold at least 1.5x the uniform share, italic at most half."""
    share, uniform = heads["shares"][relation][layer][head], heads["uniform"][relation]
    return f"**{share:.3f}**" if share >= 1.5 * uniform else f"*{share:.3f}*" if share <= 0.5 * uniform \
        else f"{share:.3f}"


def test_gpu_figures_are_the_bench_output():
    """docs/performance.md's GPU section states what bench/gpu.py recorded, and says when no GPU was present."""
    measured = json.loads((RESULTS / "gpu.json").read_text())
    text = section(doc("performance.md"), "## GPUs")
    said = " ".join(text.split())
    for model, errors in measured["attention_max_error"].items():
        row = " | ".join(f"{errors[dtype]:.2e}" for dtype in ("float32", "bfloat16", "float16"))
        assert f"| {model} | {row} |" in text, model
    seconds = measured["extraction_s"]
    assert f"MiniLM extracted {measured['texts']} texts in {seconds['float32']} s in float32, " \
           f"{seconds['bfloat16']} s in bfloat16 and {seconds['float16']} s in float16" in said
    worst = max(row["pca_max_difference_of_extent"] for row in measured["heads"])
    assert f"within {worst:.2e} of its extent on every head measured" in said
    assert all(row["pca_torch_top1_in_3"] == row["pca_sklearn_top1_in_3"] for row in measured["heads"])
    assert measured["gpu"] or "No GPU figures have been measured yet" in said


def test_the_guide_states_the_label_limits_the_code_uses():
    """docs/dashboard.md's label sample and match-label limit are the single view's constants."""
    from dashboard.figures.single import LABEL_SAMPLE, MATCH_LABELS

    text = " ".join(doc("dashboard.md").split())
    assert f"up to {MATCH_LABELS} matches are labelled" in text
    assert f"token labels on a fixed sample of {LABEL_SAMPLE:,} points" in text


def test_the_sentence_labels_largest_size_is_the_figures_own():
    """The dashboard page states the size the sentence view's labels may grow to: the figure's GROWN_LABEL_PX."""
    from dashboard.figures.sentence import GROWN_LABEL_PX

    said = " ".join(section(doc("dashboard.md"), "## Sentence").split())
    assert f"lets them grow with a taller picture, up to {GROWN_LABEL_PX} px," in said
