"""Training: one loop (``loop``: Task, Trainer, Callback, TrainResult, train), the run folder
(``run``: RunDir), the config base (``config``: TaskConfig), and the tasks (``lm``, ``seq2seq``,
``fit``: Keras-style ``compile``/``fit``/``evaluate``/``predict`` on arrays, with ``keras_callbacks``).
Checkpoints live in ``rnnlab.checkpoint`` (re-exported here)."""
from ..checkpoint import save_checkpoint, load_checkpoint, Checkpoint, CheckpointError
from .config import TaskConfig
from .loop import Callback, Task, Trainer, TrainResult, TrainingDiverged, train
from .run import RunDir, RunLocked
from .fit import ArrayTask, History
from .keras_callbacks import EarlyStopping, ModelCheckpoint
