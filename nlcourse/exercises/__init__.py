"""Self-checks for the exercise notebooks: each runs the learner's code on random inputs against
the reference and answers in words, naming the known mistake an answer looks like.
The exercises themselves are in notebooks/exercises/; the instructors' page of the book lists
what each check recognises."""

from ._cells import NotReady, require
from ._feedback import Feedback
from .ex01_embedded_gaussian import check_embedded_gaussian
from .ex02_dot_product import check_dot_product
from .ex03_concatenation import check_concatenation
from .ex04_subsample_init import check_identity_init, check_projection
from .ex05_read_maps import check_map_reading, map_facts
from .ex06_insert_block import check_insert_block
from .ex07_softmax_backward import check_softmax_backward
from .ex08_block_cost import check_block_cost
from .ex09_multi_head import check_multi_head
from .ex10_topk import check_topk
from .ex11_path_length import check_path_length

__all__ = ["Feedback", "NotReady", "require", "check_embedded_gaussian", "check_dot_product", "check_concatenation",
           "check_projection", "check_identity_init", "check_map_reading", "map_facts",
           "check_insert_block", "check_softmax_backward", "check_block_cost",
           "check_multi_head", "check_topk", "check_path_length"]
