"""One module per ``piip-llava`` subcommand: ``add_arguments(parser)`` and ``run(args)``.

Top-level imports stay light (argparse only) so building the CLI parser is instant.
"""
