"""Which engine-side handler serves each command of :mod:`ebm_studio.worker.api`.

The engine looks a command's type up here (``Engine.handle``); every handler takes the engine and
the command and answers with events. Adding a command means adding its dataclass to ``api`` and
one line here.
"""

from __future__ import annotations

from typing import Callable

from ebm_studio.worker import api, landscape_requests, training_service, trajectory_service

HANDLERS: dict[type, Callable[[object, object], None]] = {
    api.StartJob: lambda engine, cmd: engine.start_job(cmd.request),
    api.StopJob: lambda engine, cmd: engine.stop_job(cmd.slot),
    api.OpenCheckpoint: lambda engine, cmd: engine.open_checkpoint(cmd.path),
    api.SaveCheckpoint: lambda engine, cmd: engine.save_checkpoint(cmd.path),
    api.LoadData: lambda engine, cmd: engine.load_data(cmd),
    api.FetchRecordedStep: lambda engine, cmd: engine.fetch_recorded(cmd),
    api.SetDevice: lambda engine, cmd: engine.set_device(cmd.name),
    api.RollBack: lambda engine, cmd: engine.rollback(cmd.lr),
    api.RequestModelInfo: landscape_requests.reply_model_info,
    api.ComputeLandscape: landscape_requests.request_landscape,
    api.SetLandscapeView: landscape_requests.set_view_spec,
    api.DropChains: landscape_requests.drop_chains,
    api.Compose: landscape_requests.compose,
    api.SetComposeWeights: landscape_requests.set_weights,
    api.Uncompose: landscape_requests.uncompose,
    api.LoadPointsFile: landscape_requests.load_points_file,
    api.TrainOnPoints: landscape_requests.train_on_points,
    api.ResumeAndTrain: training_service.resume_and_train,
    api.RequestBufferFrame: training_service.buffer_frame,
    api.RequestRecordingInfo: trajectory_service.publish_info,
    api.PickChain: trajectory_service.pick_chain,
    api.SetRecordingBudget: trajectory_service.set_budget,
    api.SetRecordingPolicy: trajectory_service.set_policy,
    api.ExportTrajectory: trajectory_service.run_export,
}
