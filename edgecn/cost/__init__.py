"""Cost tables: each segment of a lowered model timed alone, int8, in the target's own runtime.

``edgecn tune`` builds a table (``tune.py``) by compiling every form the lowering could give
each segment (``segments.py``) and timing them through ``edgecn.runner`` (on this machine or
on the device over ssh); ``table.py`` stores it per runtime, CPU and thread count and prices a
whole model from it; a build whose target names a table takes each segment's fastest form.
"""
