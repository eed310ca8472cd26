"""The one-line verdicts: ``check`` prints its headline and failing comparisons
(:mod:`reports.verdict.check`, also as JSON), and the report opens with a line worded the same
way, computed from the results dict alone (:mod:`reports.verdict.report`).
"""
