"""Job types the engine can run, by request kind."""

from ebm_studio.worker.jobs.sample_job import SampleJob
from ebm_studio.worker.jobs.train_job import TrainJob
from ebm_studio.worker.jobs.fit_job import FitJob

JOB_TYPES = {"sample": SampleJob, "train": TrainJob}
JOB_TYPES["fit"] = FitJob
