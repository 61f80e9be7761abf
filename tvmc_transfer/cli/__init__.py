"""Command-line commands: each module registers one parser and turns its arguments into an API call.

Nothing here imports TVM at module level, so ``tvmc --help`` stays fast.
"""
