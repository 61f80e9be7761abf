"""``tvmc tune``: MetaSchedule evolutionary search into a records folder; re-running it resumes."""

from ..atomic import write_json
from ..errors import TVMCException, lowering_hint, tvm_errors
from ..tune.option_defaults import POPULATION, POPULATION_HELP, SEED, TRIALS, TRIALS_PER_ITER
from .build import add_lowering_arguments, lowering_from_args
from .common import add_model_arguments, check_output_folder, load_model_from_args, plan_from_args
from .measure import add_measure_arguments, measure_options_from_args
from .registry import register_parser
from .target import add_target_arguments, target_from_args


@register_parser
def add_tune_parser(subparsers, main_parser, json_config):
    parser = subparsers.add_parser(
        "tune",
        help="auto-tune a model's kernels with MetaSchedule",
        description="Tune a model's kernels. The records are MetaSchedule's JSON database (a folder); running "
        "the same command again resumes: recorded trials count against --trials and are not measured again.",
    )
    add_model_arguments(parser)
    parser.add_argument("-o", "--output", metavar="RECORDS", help="records folder to write (and resume); required unless --tasks list")
    add_target_arguments(parser)
    add_lowering_arguments(parser)
    parser.add_argument("--trials", type=int, default=TRIALS, help=f"total trials over all tasks, recorded ones included (default {TRIALS})")
    parser.add_argument("--trials-per-task", type=int, help="most trials for one task")
    parser.add_argument("--time-limit", "--time-budget", dest="time_budget", type=float, metavar="SECONDS", help="wall-clock limit of the whole run: no batch starts after it (the records are kept; run again to go on); --time-budget is the same")
    parser.add_argument("--patience", type=int, metavar="K", help="stop tuning a task whose best has not moved in K of its batches and give its trials to the others")
    parser.add_argument("--trials-per-iter", type=int, help=f"candidates measured per batch (default: {TRIALS_PER_ITER}, fewer if the budget is small)")
    parser.add_argument("--tasks", metavar="list|SPEC", help="'list' to show the tasks, or which to tune: 0,2-5")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed of the search (default {SEED})")
    parser.add_argument("--population", type=int, default=POPULATION, help=f"evolutionary search population ({POPULATION_HELP})")
    parser.add_argument("--tuning-records", action="append", default=[], metavar="PRIOR", help="records to start from (repeatable)")
    parser.add_argument("--report", metavar="FILE.json", help="also write the report as JSON: per task its trials and best time, and where the wall time went")
    parser.add_argument(
        "--no-default-schedules", dest="default_start", action="store_false",
        help="start the search from random samples only; by default each kernel without a record first gets the "
        "default schedule an untuned compile would use, measured, and the search starts from it",
    )
    add_measure_arguments(parser)
    parser.set_defaults(func=drive_tune)


def drive_tune(args) -> int:
    from ..build.tasks import extract_tasks, format_task_table
    from ..tune.model import tune_model

    if args.tasks != "list" and not args.output:
        raise TVMCException("give the records folder to write with -o RECORDS")
    target = target_from_args(args)
    model = load_model_from_args(args)
    what_to_try = lowering_hint(target, lowering_from_args(args))
    if args.tasks == "list":
        with tvm_errors("task extraction", what_to_try):
            print(format_task_table(extract_tasks(model, target, lowering_from_args(args))))
        return 0
    check_output_folder(args.output, "records")
    if args.report:
        check_output_folder(args.report, "report")
    options = tune_options_from_args(args)
    with tvm_errors("tuning", what_to_try):
        report = tune_model(model, target, args.output, options, prior_records=args.tuning_records, plan=plan_from_args("tune", args))
    print(report.summary())
    for phase in report.phases:
        print(phase.summary())
    if args.report:
        write_json(args.report, report.to_json())
    print(f"records: {report.records}")
    return 0


def tune_options_from_args(args):
    """The ``TuneOptions`` a ``tune`` command line describes (measurement and lowering included)."""
    from ..tune.model import TuneOptions  # pylint: disable=import-outside-toplevel

    return TuneOptions(
        trials=args.trials,
        trials_per_task=args.trials_per_task,
        trials_per_iter=args.trials_per_iter,
        tasks=args.tasks,
        seed=args.seed,
        population=args.population,
        time_budget=args.time_budget,
        patience=args.patience,
        default_start=args.default_start,
        measure=measure_options_from_args(args),
        lowering=lowering_from_args(args),
    )
