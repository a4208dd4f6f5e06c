"""edgetune's ClientApp with faults a fleet must survive, chosen by the SuperNode's node config
``fault``: "nan" (the reply's first tensor is NaN), "shape" (it has a row too few), "lie"
(it claims another artifact id), "drop" (in round 3 the SuperNode process dies mid-round, as a
phone going offline). Copied into the Flower App directory of the fleet tests, so the FAB ships it."""
import os
import signal

import numpy as np
from flwr.app import Array
from flwr.clientapp import ClientApp

from edgetune.fleet import client


def faulty(msg, context, call_next):
    fault = context.node_config.get("fault")
    if fault == "drop" and msg.metadata.message_type.startswith("train") and msg.content["config"]["server-round"] == 3:
        os.kill(os.getppid(), signal.SIGKILL)  # the SuperNode that started this ClientApp
        os._exit(1)
    reply = call_next(msg, context)
    if reply.has_error() or "arrays" not in reply.content.array_records:
        return reply
    arrays = reply.content["arrays"]
    first = next(iter(arrays.keys()))
    value = arrays[first].numpy()
    if fault == "nan":
        value = value.copy()
        value.flat[0] = np.nan
        arrays[first] = Array(value)
    elif fault == "shape":
        arrays[first] = Array(np.ascontiguousarray(value[:-1]))
    elif fault == "lie":
        reply.content["config"]["artifact-id"] = "0" * 64
    return reply


app = ClientApp(mods=[faulty])
app.train()(client.train)
app.evaluate()(client.evaluate_held_out)
