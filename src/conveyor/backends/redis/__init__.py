"""The Redis store (also Valkey): every state change that touches more than one key is one
Lua script, so nothing is ever half-written, and every script touches one hash slot only, so
the same code runs on a single server, behind Sentinel, and on Redis Cluster.

Every key of one queue shares the hash tag ``{ns:q}``, hence one slot; the namespace-wide
keys share ``{ns}``. Scripts (``lua/*.lua``) touch one queue's slot; work across queues is
one script call per queue from Python, pipelined into one round-trip wherever order allows
(fetch alone goes queue by queue, because the first queue must be drained before the next).
The key layout is in ``keys.py``, the URL forms in ``connect.py``.

The id index and the queue registry live in another slot than the jobs, so on Cluster they
are written by a separate call, *before* the jobs. A client that dies in between leaves an
index entry (or a registered queue) without a job: ``get`` finds no job and says None, an
empty queue shows zero counts. The reverse, a job that ``get`` cannot find, would be
harmful, so it cannot happen by this order; should an index entry be lost anyway, ``get``
falls back to looking in every queue and repairs it. On a single server or Sentinel, where
a script may touch keys of any slot, the enqueue script writes the index, the registry and
the jobs together.

Guarantees and their limits:

* Every script is safe to run twice (redis-py re-sends a call whose reply was lost): enqueue
  does nothing when the first job of its call exists (a call is all or nothing), fetch
  returns the same claim for the same token, complete, fail and release act only on jobs
  the worker still holds (its ``held`` set).
* ``max_queue_length`` is checked inside the enqueue script, so a queue never passes it. A
  batch spanning several queues is all-or-none by compensation: when one queue is full, the
  jobs the others just stored are deleted again before ``QueueFull`` is raised. Each queue's
  part of a batch is stored whole or not at all; a client dying in the middle of a batch
  spanning several queues may leave some queues' parts stored and not the others.
* A batch of more than 1,000 jobs with no queue limit is streamed (``enqueue_stream``):
  each chunk of 1,000 is written as soon as it is built, so the server stores one while
  Python builds the next, and the replies are read at the end (bulk enqueue 43k -> 55k
  jobs/s). Every job is checked and encoded before the first chunk leaves, so bad input
  still stores nothing; a client dying part-way leaves the chunks it sent stored, each job
  whole, as Sidekiq's ``push_bulk`` does with its slices of 1,000.
* Idle workers block in BLPOP on their queues' wake lists. On Cluster one BLPOP cannot span
  slots, so a worker of several queues blocks on the first and finds jobs of the others at
  its next fetch (``idle_wait`` later).

* Behind Sentinel every reconnection asks the Sentinels for the master (after a refused
  connection or a READONLY reply), and a script missing there is loaded on the connection
  that runs it. With ``replicas=N`` enqueue, complete and fail end with ``WAIT N`` (one
  round-trip with the call); see docs/production/redis.md.
* A full server (maxmemory, noeviction) refuses an enqueue as ``StoreFull``; the scripts
  that drain it (fetch, complete, extend, beat) write something that frees memory first,
  since Redis refuses only a script whose first write may grow memory.

Payloads and results are bytes moved by the scripts as they are; only Python parses them.

Modules, each with one job: ``keys`` (every key name, and each script's KEYS), ``connect``
(URL forms, client options, what counts as an outage), ``wire`` (scripts by SHA, pipelines,
each thread's own connection), ``records`` (hash <-> ``JobRecord``), ``store`` (the hot path
and housekeeping), ``admin`` (listings, counts, actions), ``lua/`` (the scripts).
"""

from .connect import RedisUnavailable, connect
from .store import RedisBackend
from .wire import NotReplicated

__all__ = ["NotReplicated", "RedisBackend", "RedisUnavailable", "connect"]
