"""The holdout texts latency is timed on: a fixed-seed random sample, the same for student and teacher."""

from __future__ import annotations

from core.evaluation import jobs, latency


def sorted_holdout(classes: int = 10, per_class: int = 100) -> list[str]:
    return [f"class{c} text {i}" for c in range(classes) for i in range(per_class)]  # grouped by label


def test_a_holdout_sorted_by_label_still_gives_a_sample_across_its_classes():
    sample = latency.timing_sample(sorted_holdout())
    assert len(sample) == latency.SAMPLE and len(set(sample)) == latency.SAMPLE
    classes = {t.split()[0] for t in sample}
    assert len(classes) == 10  # texts[:256] would have held three classes
    singles = {t.split()[0] for t in sample[:latency.SINGLES]}  # the ones timed one at a time
    assert len(singles) >= 8


def test_the_sample_is_deterministic_and_a_small_holdout_is_all_taken_in_a_mixed_order():
    texts = sorted_holdout()
    assert latency.timing_sample(texts) == latency.timing_sample(list(texts))
    small = sorted_holdout(classes=4, per_class=30)
    sample = latency.timing_sample(small)
    assert sorted(sample) == sorted(small) and sample != small
    assert len({t.split()[0] for t in sample[:20]}) >= 3


def test_the_evaluation_times_student_and_teacher_on_the_one_sample():
    class Recorder:
        def __init__(self):
            self.seen: list[str] = []

        def predict_proba(self, texts, *, batch_size=64):
            self.seen.extend(texts)

    assert jobs.timing_sample is latency.timing_sample  # one helper, one place
    sample = latency.timing_sample(sorted_holdout())
    student, teacher = Recorder(), Recorder()
    jobs.measure_latency(student, teacher, sample)
    assert set(student.seen) == set(teacher.seen) == set(sample)
