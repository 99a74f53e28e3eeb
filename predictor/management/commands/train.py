from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from predictor.management.commands._common import cli_actor, format_metrics
from predictor.ml.data import DataError, load_csv, load_diabetes_bmi
from predictor.predictions.selectors import dataset_with_outcomes
from predictor.registry import services


class Command(BaseCommand):
    help = (
        "Train a new model version on the diabetes data (or --data CSV), store it with its metrics, "
        "and promote it if its held-out R² exceeds the threshold. Exits non-zero when the version "
        "fails the gate, so a pipeline can stop on it."
    )

    def add_arguments(self, parser):
        defaults = services.DEFAULT_HYPERPARAMETERS
        # --epochs and --seed are the public names (as in the train API); dest is the estimator's.
        parser.add_argument(
            "--epochs",
            dest="max_epochs",
            type=int,
            default=defaults["max_epochs"],
            help="Maximum epochs of SGD (default %(default)s).",
        )
        parser.add_argument(
            "--learning-rate",
            type=float,
            default=defaults["learning_rate"],
            help="Initial SGD step size, standardized data (default %(default)s).",
        )
        parser.add_argument(
            "--decay",
            type=float,
            default=defaults["decay"],
            help="Step-size decay: eta_t = lr / (1 + lr * decay * t) (default %(default)s).",
        )
        parser.add_argument(
            "--tol", type=float, default=defaults["tol"], help="Stopping tolerance on the loss (default %(default)s)."
        )
        parser.add_argument(
            "--seed",
            dest="random_state",
            type=int,
            default=0,
            help="Seed for shuffles and the CSV split (default 0).",
        )
        parser.add_argument(
            "--threshold",
            type=float,
            default=None,
            help=f"Held-out R² the version must exceed to serve (default {settings.PREDICTOR_PROMOTION_THRESHOLD}).",
        )
        parser.add_argument(
            "--data", metavar="CSV", default=None, help="Train on this CSV file (header 'bmi,progression') instead."
        )
        parser.add_argument(
            "--test-fraction",
            type=float,
            default=None,
            help="With --data: share of CSV rows held out for testing, chosen at random with --seed (default 0.2).",
        )
        parser.add_argument(
            "--no-promote", action="store_true", help="Store the version as a candidate even if it passes the gate."
        )
        parser.add_argument(
            "--with-outcomes",
            action="store_true",
            help="Add every recorded outcome (BMI from the log, observed progression) to the training rows.",
        )

    def handle(self, *args, **options):
        dataset = self.load_dataset(options)
        n_outcome_rows = 0
        if options["with_outcomes"]:
            dataset, n_outcome_rows = dataset_with_outcomes(dataset)
            self.stdout.write(f"Adding {n_outcome_rows} observed outcome(s) to the training rows.")
        try:
            result = services.model_version_train(
                dataset=dataset,
                **{name: options[name] for name in services.TRAINING_PARAMETERS},
                promote=not options["no_promote"],
                n_outcome_rows=n_outcome_rows,
                actor_name=cli_actor(),
            )
        except (ValueError, services.RegistryError) as exc:
            raise CommandError(str(exc)) from exc
        version = result.version
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
        self.stdout.write(
            f"Version {version.version} trained on {version.dataset_name} ({version.data_fingerprint[:12]})."
        )
        self.stdout.write(format_metrics(version))
        if version.status == version.Status.REJECTED:
            raise CommandError(f"Version {version.version} {result.decision}.")
        self.stdout.write(self.style.SUCCESS(f"Version {version.version} {result.decision}."))

    def load_dataset(self, options):
        if options["test_fraction"] is not None and not options["data"]:
            # The diabetes data's split is fixed (its last 20 rows, as in the original benchmark).
            raise CommandError("--test-fraction applies only with --data; the diabetes data's split is fixed.")
        try:
            if options["data"]:
                return load_csv(
                    options["data"],
                    test_fraction=0.2 if options["test_fraction"] is None else options["test_fraction"],
                    random_state=options["random_state"],
                    bmi_range=(settings.PREDICTOR_BMI_MIN, settings.PREDICTOR_BMI_MAX),
                    progression_range=(settings.PREDICTOR_OUTCOME_MIN, settings.PREDICTOR_OUTCOME_MAX),
                    # The file name only: the server's paths are not for the public model pages.
                    name=f"csv:{Path(options['data']).name}",
                )
            return load_diabetes_bmi()
        except DataError as exc:
            raise CommandError(f"{options['data']}: {exc}" if options["data"] else str(exc)) from exc
