# The Otter Assign source notebooks are instructors' files, not pages: `otter assign` turns them
# into the student notebooks and the autograder (tests/test_otter.py runs it); nbval leaves them.
collect_ignore_glob = ["*.ipynb"]
