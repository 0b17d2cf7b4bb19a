"""Alert rules, pure: what a rule is (condition, threshold, sustain time, scope, severity, channels, repeat), what
each condition sees in the facts the controller collected, and the evaluator that turns facts into state
transitions (pending -> firing -> resolved, acknowledged, repeats no more often than the interval).

No I/O and no wire types: the controller (controller/alerts) collects the facts, stores the states and delivers
the notifications; this package only decides. That keeps every decision unit-testable with numbers worked by hand.
"""
