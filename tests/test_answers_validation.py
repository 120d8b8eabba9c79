"""The answers file keeps every answer and invents none: every record is checked field by field on read and on
write, with messages that name the file and the line; ``fooled`` is derived, never believed; an answer is
(session, player, origin, trial), so two machines on one session id are both counted; schema-1 files still read;
and answers at other display times or on other images are never pooled."""
import json
import re

import pytest

from fastdiff.measure.answers import AnswerLog, AnswerRecordError, read_answers
from fastdiff.measure.foolrate import fool_rate_table, wilson_interval
from fastdiff.studies import fool_rate_game


def stored_answer(trial, *, fooled, model="small", player="p", real_side="left", **fields):
    """One schema-2 answer as the game writes it."""
    choice = ("right" if real_side == "left" else "left") if fooled else real_side
    return {"schema": 2, "session": "s", "player": player, "host": "lab-1", "trial": trial, "n_trials": 100,
            "model": model, "image_set": "0123456789abcdef", "image_id": f"im{trial}", "real_side": real_side,
            "choice": choice, "fooled": bool(fooled), "response_s": 6.0, "show_s": 5.0,
            "utc": "2026-01-01T00:00:00+00:00", **fields}


def schema_1(record):
    """The same answer as fastdiff wrote it before schema 2: no host, no image set."""
    return {**{k: v for k, v in record.items() if k not in ("host", "image_set")}, "schema": 1}


def write_answers(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def six_answers():
    return [stored_answer(i, fooled=i % 3 == 0) for i in range(6)]


def with_line(number, **fields):
    """Six good answers, the one on line ``number`` (from 1) changed."""
    records = six_answers()
    records[number - 1].update(fields)
    return records


@pytest.mark.parametrize("line, fields, message", [
    (3, {"fooled": "false"}, "line 3: field 'fooled' must be true or false, got the string 'false'"),
    (2, {"trial": "0"}, "line 2: field 'trial' must be an integer >= 0, got the string '0'"),
    (1, {"schema": "2"}, "line 1: field 'schema' must be an integer >= 1, got the string '2'"),
    (4, {"response_s": "6.5"}, "line 4: field 'response_s' must be a finite number >= 0 (seconds), got the string "
                               "'6.5'"),
    (5, {"response_s": None}, "line 5: field 'response_s' must be a finite number >= 0 (seconds), got null"),
    (6, {"model": 3}, "line 6: field 'model' must be a non-empty string, got the number 3"),
    (2, {"show_s": 0}, "line 2: field 'show_s' must be a finite number > 0 (seconds), got the number 0"),
    (2, {"choice": "middle"}, "line 2: field 'choice' must be 'left' or 'right', got the string 'middle'"),
    (2, {"image_set": "abc"}, "line 2: field 'image_set' must be 16 hex digits"),
    (2, {"host": ""}, "line 2: field 'host' must be a non-empty string, got the string ''"),
    (2, {"utc": "yesterday"}, "line 2: field 'utc' must be an ISO 8601 time with its time zone"),
    (2, {"trial": 100}, "line 2: trial 100 is outside the session's n_trials 100"),
    (2, {"trial": True}, "line 2: field 'trial' must be an integer >= 0, got true"),
    (2, {"note": "x"}, "line 2: unknown fields ['note'] in a schema-2 answer"),
    (2, {"schema": 3}, "line 2: answer record schema 3 is newer than this fastdiff's"),
])
def test_a_wrongly_typed_field_is_an_error_naming_the_file_and_line(tmp_path, line, fields, message):
    log = write_answers(tmp_path / "answers.jsonl", with_line(line, **fields))
    with pytest.raises(AnswerRecordError, match=re.escape(f"answers.jsonl, {message}")):
        read_answers(log)


def test_a_missing_field_and_a_line_that_is_not_an_object_are_errors(tmp_path):
    records = six_answers()
    del records[1]["real_side"]
    with pytest.raises(AnswerRecordError, match=r"line 2: the record lacks the fields \['real_side'\]"):
        read_answers(write_answers(tmp_path / "a.jsonl", records))
    (tmp_path / "b.jsonl").write_text("[1, 2]\n")
    with pytest.raises(AnswerRecordError, match=r"b.jsonl, line 1: an answer record is a JSON object, got the array"):
        read_answers(tmp_path / "b.jsonl")


def test_a_stored_fooled_that_contradicts_the_choice_is_an_error_not_believed(tmp_path):
    records = six_answers()
    records[2]["fooled"] = not records[2]["fooled"]          # chose left, the real image was left: not fooled
    with pytest.raises(AnswerRecordError, match="answers.jsonl, line 3: 'fooled' is true but the player chose left "
                                                "and the real image was on the left, so fooled is false"):
        read_answers(write_answers(tmp_path / "answers.jsonl", records))


def test_every_bad_line_is_listed(tmp_path):
    records = [{**stored_answer(i, fooled=False), "trial": str(i)} for i in range(8)]
    with pytest.raises(AnswerRecordError) as e:
        read_answers(write_answers(tmp_path / "a.jsonl", records))
    lines = str(e.value).splitlines()
    assert [ln.split(": ")[0].rsplit(", ", 1)[1] for ln in lines[:5]] == [f"line {i}" for i in range(1, 6)]
    assert lines[-1] == "... and 3 more bad lines"


def test_append_checks_the_record_and_writes_nothing_bad(tmp_path):
    log = AnswerLog(tmp_path / "answers.jsonl")
    log.append(stored_answer(0, fooled=True))
    for fields, message in (({"trial": "1"}, "field 'trial' must be an integer >= 0, got the string '1'"),
                            ({"fooled": False}, "'fooled' is false but the player chose right"),
                            ({"image_set": None}, "field 'image_set' must be 16 hex digits"),
                            ({"origin": "lab-1"}, r"unknown fields \['origin'\]")):
        with pytest.raises(AnswerRecordError, match=re.escape("answers.jsonl: the answer to append: ") + message):
            log.append({**stored_answer(1, fooled=True), **fields})
    with pytest.raises(AnswerRecordError, match="new answers are written in schema 2, got schema 1"):
        log.append(schema_1(stored_answer(1, fooled=True)))
    assert [r["trial"] for r in log.read()] == [0]


def test_a_string_trial_cannot_double_n(tmp_path):
    """The old reader took a string "0" for another trial than 0 and counted the answer twice."""
    records = six_answers() + [{**six_answers()[0], "trial": "0"}]
    with pytest.raises(AnswerRecordError, match="line 7: field 'trial' must be an integer >= 0, got the string '0'"):
        read_answers(write_answers(tmp_path / "answers.jsonl", records))


def test_a_schema_1_file_still_reads_with_its_file_as_origin_and_no_image_set(tmp_path):
    log = write_answers(tmp_path / "old.jsonl", [schema_1(r) for r in six_answers()])
    with pytest.warns(UserWarning, match="6 answers of schema 1.*origin is taken to be this file and their image "
                                         "set is unknown"):
        answers = read_answers(log)
    assert {a["origin"] for a in answers} == {f"file:{log.resolve()}"}
    assert {a["host"] for a in answers} == {a["image_set"] for a in answers} == {None}
    table = fool_rate_table(answers)
    assert table[["model", "show_s", "image_set", "n", "fooled"]].values.tolist() == \
        [["small", 5.0, "unknown (schema 1)", 6, 2]]
    # beside newer answers of the same model, the old ones are their own row, never pooled
    with open(log, "a") as f:
        f.write(json.dumps(stored_answer(0, fooled=True, session="new")) + "\n")
    with pytest.warns(UserWarning, match="6 answers of schema 1"):
        answers = read_answers(log)
    with pytest.warns(UserWarning, match="model 'small' was played in 2 settings .* not pooled"):
        table = fool_rate_table(answers)
    assert sorted(table["n"]) == [1, 6] and set(table["image_set"]) == {"unknown (schema 1)", "0123456789abcdef"}


def test_the_same_session_on_two_hosts_keeps_every_answer(tmp_path):
    """Two laptops played session "lecture" as the default player; their files, concatenated, hold 2 x 6 answers."""
    a = [stored_answer(i, fooled=i < 2, session="lecture", player="player-1", host="laptop-a") for i in range(6)]
    b = [stored_answer(i, fooled=i < 5, session="lecture", player="player-1", host="laptop-b") for i in range(6)]
    answers = read_answers(write_answers(tmp_path / "both.jsonl", a + b))
    table = fool_rate_table(answers)
    assert table[["n", "fooled", "players", "sessions"]].values.tolist() == [[12, 7, 2, 2]]
    assert table.attrs["duplicates_dropped"] == 0
    # the same answer written twice on one machine is still one answer
    with pytest.warns(UserWarning, match="1 duplicate answers .*trial 0 of session 'lecture' by 'player-1' from "
                                         "laptop-a"):
        table = fool_rate_table(read_answers(write_answers(tmp_path / "dup.jsonl", a + b + a[:1])))
    assert table["n"].tolist() == [12]


def test_other_display_times_and_image_sets_are_separate_rows(tmp_path):
    records = [stored_answer(i, fooled=i % 2, show_s=5.0) for i in range(4)] + \
              [stored_answer(i, fooled=1, show_s=2.0, session="s2") for i in range(4)] + \
              [stored_answer(i, fooled=0, image_set="fedcba9876543210", session="s3") for i in range(4)]
    with pytest.warns(UserWarning, match=r"model 'small' was played in 3 settings \(show_s=2.0 image_set="
                                         r"0123456789abcdef; .*fedcba9876543210\): each is its own row, not pooled"):
        table = fool_rate_table(read_answers(write_answers(tmp_path / "a.jsonl", records)))
    rows = {(r.show_s, r.image_set): (r.n, r.fooled) for r in table.itertuples()}
    assert rows == {(5.0, "0123456789abcdef"): (4, 2), (2.0, "0123456789abcdef"): (4, 4),
                    (5.0, "fedcba9876543210"): (4, 0)}
    assert table.loc[table["show_s"] == 2.0, "ci_low"].item() == pytest.approx(wilson_interval(4, 4)[0])
    with pytest.warns(UserWarning, match="player 'p' was played in 2 settings"):
        per_player = fool_rate_table(read_answers(tmp_path / "a.jsonl"), by="player")
    assert sorted(per_player["n"]) == [4, 8]           # the models pool per player, the display times do not


def test_the_table_counts_only_answers_read_from_a_file():
    with pytest.raises(ValueError, match="must come from read_answers, which gives it its origin"):
        fool_rate_table([stored_answer(0, fooled=True)])


def test_fool_rate_table_counts_and_intervals(tmp_path):
    recs = [stored_answer(10 * j + i, fooled=f, model=m, player=f"p{i % 2}", response_s=1.0 + i)
            for j, (m, fooled) in enumerate([("small", [1, 0, 0, 1]), ("original", [1, 1, 1, 0, 0])])
            for i, f in enumerate(fooled)]
    answers = read_answers(write_answers(tmp_path / "a.jsonl", recs))
    table = fool_rate_table(answers)
    assert list(table.columns[:3]) == ["model", "show_s", "image_set"]
    table = table.set_index("model")
    assert table.loc["small", ["n", "fooled"]].tolist() == [4, 2] and table.loc["original", "fool_rate"] == 0.6
    assert (table.loc["original", "ci_low"], table.loc["original", "ci_high"]) == pytest.approx(wilson_interval(3, 5))
    assert table.loc["small", "players"] == 2 and table.index[0] == "original"
    assert table.loc["small", "median_response_s"] == 2.5
    both = fool_rate_game.beside_paper(fool_rate_table(answers))
    assert list(both["source"]).count("measured here") == 2 and both["fool_rate"].iloc[-1] == 0.32
    assert both["show_s"].iloc[-1] == fool_rate_game.PAPER_SHOW_SECONDS
    per_player = fool_rate_table(answers, by="player")
    assert list(per_player.columns[:2]) == ["player", "show_s"] and per_player["n"].sum() == 9
