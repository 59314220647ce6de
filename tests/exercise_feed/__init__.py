"""Realistic answers to the exercises, written the way students write them, for
tests/test_exercise_feed.py: each module holds WRONG, a list of (label, answer, names) where
``names`` are the mistake names a good check should give (any one of them counts), and RIGHT, a
list of (label, answer) of correct answers written differently from the solution, which every
check must accept."""
