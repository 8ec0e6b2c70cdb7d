"""Every default of the swarm, in one place, each with the reason for its value.

Modules import the names they need from here; nothing else hard-codes a tunable number.
Sections are owned by concept (board, arena runner, agent, proposers, metrics); add to the
section of your concept and keep the "why" comment next to each value.
"""

# --- connection --------------------------------------------------------------------------------
REDIS_URL = "redis://127.0.0.1:6379/0"  # the conventional local Redis; override with --redis / SWARM_REDIS_URL
SWARM_NAME = "default"  # one swarm per server is the common case; --swarm / SWARM_NAME picks another
CONNECT_RETRIES = 5  # transient errors (restart, failover) usually clear within a few seconds
CONNECT_BACKOFF_S = 0.2  # first retry delay; doubles per retry, so 5 retries span ~6 s
SOCKET_TIMEOUT_S = 5.0  # a board command is sub-millisecond; 5 s means the server or network is gone
SENTINEL_TIMEOUT_S = 1.0  # a sentinel answers in milliseconds; after 1 s the next sentinel is asked instead
REPLICA_ACKS = 1  # a result or leader move counts once one replica has it: Sentinel promotes the most up to date
REPLICA_WAIT_MS = 1_000  # a replica acks within one round trip (~1 ms on a LAN); 1 s means it is stuck or gone
REPLICAS_CHECK_S = 10.0  # INFO replication re-read this often: Sentinel itself finds new replicas every 10 s

# --- metrics (agent /metrics, board exporter) ---------------------------------------------------
METRICS_BASE_PORT = 9410  # agent on GPU i serves /metrics on base + i; 9400 is dcgm-exporter's port
EXPORTER_PORT = 9409  # the board exporter sits just below the agents' range, easy to remember next to them
METRICS_ADDR = "0.0.0.0"  # Prometheus scrapes from another host or container, so listen on every interface
METRICS_PORT_SCAN = 64  # ports tried from an agent's default port when it is taken (another agent, another
#                          service): a node runs at most ~16 agents, and a bounded scan fails fast on a full range
# experiment wall time: CPU smoke runs take seconds, the arena budget 5 min + setup/eval, runaways 30 min
EXPERIMENT_BUCKETS_S = (5.0, 15.0, 30.0, 60.0, 120.0, 240.0, 300.0, 330.0, 360.0, 420.0, 600.0, 900.0, 1800.0)
# claim wait: milliseconds when the queue is full, minutes when it runs dry
CLAIM_WAIT_BUCKETS_S = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0)
# one LLM call: a second for a short reply, minutes for a long reasoning edit
LLM_LATENCY_BUCKETS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0, 300.0)
EXPORTER_RESULTS_WINDOW = 5000  # newest results a scrape reads on a board without the results summary
EXPORTER_RATE_WINDOW_S = 3600.0  # "experiments per hour" counts results published within the last hour
RESULTS_MINUTES_KEPT = 120  # per-minute result counts kept (results:minutes): "last hour" reads them, with room
REPORT_MAX_RESULTS = 200_000  # `swarm report` reads every result up to this: ~2 weeks of a 100-GPU swarm
REPORT_DIFF_MAX_LINES = 200  # one leader move's diff in report.md is cut here; the board keeps it all
REPORT_LABEL_CHARS = 48  # hypothesis titles on the chart: enough to recognise, short enough not to overlap
REPORT_LATEST_ERRORS = 10  # failed results listed with their error in report.md, newest first

# --- LLM proposers -----------------------------------------------------------------------------
PROPOSER_TIMEOUT_S = 120.0  # a long implementation reply from a slow local model can take ~1-2 minutes
PROPOSER_MAX_RETRIES = 3  # SDK retries on 429/5xx/timeouts with exponential backoff (0.5 s, 1 s, 2 s)
PROPOSER_MAX_EDIT_ATTEMPTS = 3  # ShinkaEvolve's figure: a model that misses 3 times rarely hits on the 4th
PROPOSER_MAX_REPAIRS = 2  # each repair re-runs the experiment; more than 2 burns GPU time on a bad idea
PROPOSER_CONTEXT_TOKENS = 24_000  # fits every current API and 32k-context local models with room to reply
PROPOSER_MAX_OUTPUT_TOKENS = 8_192  # a whole train.py rewrite in blocks fits; most replies are far shorter
# Proposer health (swarm/proposers/health.py). A proposer failing every call is tried at 0, ~15 s and
# ~45 s, then paused: probed after 5, 10, 20, 30, 30... minutes. That is 3 failed tries in the first
# 5 minutes and one per 10-30 minutes after (each try: up to 2 replies to ideate, 3 edit rounds to
# implement, and the SDK's retries of each), against a target of <= 20 calls, then <= 1 per minute.
PROPOSER_BACKOFF_S = 15.0  # wait after a first failure, doubling per failure in a row, +-20% jitter
PROPOSER_PAUSE_AFTER = 3  # failures in a row (transport, HTTP errors, prose replies, edits that never apply)
PROPOSER_PAUSE_S = 300.0  # outlasts most outages and rate-limit windows; other proposers go on meanwhile
PROPOSER_PAUSE_MAX_S = 1800.0  # a probe every 30 minutes at most: a dead endpoint costs ~2 calls an hour
PROPOSER_JITTER = 0.2  # spreads the agents of a swarm so an outage's end is not met by all of them at once
GIVEBACK_REASON_MAX_CHARS = 300  # why an implementation failed, as recorded on the hypothesis
GIVEBACK_FAILURES_KEPT = 20  # implementation failures listed on a hypothesis (the newest)
PROPOSER_FUZZY_THRESHOLD = 0.85  # difflib ratio for a fuzzy SEARCH match; lower matches the wrong lines
PROPOSER_BANDIT_MIN_OBS = 5  # per-arm observations before the bandit overrides the configured weights
PROPOSER_BANDIT_COST_FLOOR_USD = 0.20  # ~5 GPU-minutes at ~$2.5/h: what any experiment costs, LLM or not
PROPOSER_HISTORY_ITEMS = 40  # results listed per history section before the token budget trims further

# --- board: patches ----------------------------------------------------------------------------
PATCH_MAX_BYTES = 256 * 1024  # a full rewrite of a ~30 KB train.py diffs to ~60 KB; 4x headroom

# --- board: swarm settings, claims, records ------------------------------------------------------
LEASE_S = 900.0  # a 5-minute run plus setup, eval and an LLM repair fits; agents renew every LEASE_S/3
MAX_ATTEMPTS = 3  # a hypothesis whose lease expired 3 times (dead agents, OOM kills) is failed, not retried forever
MIN_DELTA = 0.0  # 0 = any strict improvement moves a leader; set it to the seed noise (e.g. 0.001) per swarm
REAP_BATCH = 100  # expired leases (and dead agents' claims) reaped per call: bounds one script under a mass death
HEARTBEAT_TTL_S = 60.0  # agents beat every ~10 s; 60 s tolerates GC pauses and a Redis failover before "dead"
#                        (and before a dead agent's claims are reaped); per swarm: `swarm init --heartbeat-ttl-s`
HEARTBEAT_TTL_MIN_S = 1.0  # shorter means beats several times a second, and one scheduling hiccup counts as death
HEARTBEATS_PER_TTL = 6  # beats per TTL (60 s / 10 s): five in a row can be lost before the claims are
#                         reaped; a swarm with a TTL under 60 s beats more often (registry.beat_every_s)
EVENTS_MAXLEN = 10_000  # the human log is capped (approximate trim); results and leader moves are not
LEADER_MOVES_MAXLEN = 100_000  # moves are rare (a few per hour per track); this is years of catch-up history
ARENA_FILE_MAX_BYTES = 8 * 1024 * 1024  # the real arena ships a ~2-3 MB compressed corpus; 8 MiB per file
ARENA_TOTAL_MAX_BYTES = 16 * 1024 * 1024  # the whole pinned arena; Redis values stay far under the 512 MB cap
HYP_TEXT_MAX_CHARS = 8_000  # a title plus a few paragraphs of rationale; longer is a sign of pasted code
PRIORITY_MIN, PRIORITY_MAX = -1000, 1000  # bounded so the claim score (priority, age) fits a double exactly
TAGS_MAX, TAG_MAX_CHARS = 16, 40  # tags are labels, not text
META_MAX_BYTES = 2_048  # proposer data (e.g. classical params) travels with the hypothesis; keep it small
BRIEF_MAX_BYTES = 256 * 1024  # program.md is a few KB; the cap stops a wrong file being set as the brief
ERROR_MAX_CHARS = 4_000  # a result's error is a summary (the tail of a traceback), not the log

# --- classical proposer ------------------------------------------------------------------------
CLASSICAL_STARTUP_TRIALS = 10  # Optuna's own default: TPE's two densities need ~10 points before beating random
CLASSICAL_MAX_CHANGES = 3  # constants changed per idea: a local move stays attributable under seed noise
CLASSICAL_FLOAT_FACTOR = 4.0  # floats move within x/4..x*4: a learning rate off by more is a new recipe, not a tune
CLASSICAL_INT_FACTOR = 2.0  # ints (depth, heads, steps) within x/2..x*2: under a fixed budget, size costs steps
CLASSICAL_POW2_STEPS = 2  # powers of two (batch, dims >= 32) move at most 2 doublings/halvings: 2^(k-2)..2^(k+2)
CLASSICAL_POW2_MIN = 32  # smaller powers of two (depth 8, 4 heads) are counts, tuned as plain ints
CLASSICAL_FRACTION_STEP = 0.25  # fractions move at most +-0.25 and at most halfway to 0 or to 1
CLASSICAL_SIG_DIGITS = 2  # proposed values are rounded (4.2e-3, not 4.1873e-3): readable titles, real dedup
CLASSICAL_MODEL_STEP = True  # one idea per call is the model step (swarm/proposers/surrogate.py) once the fit has data
CLASSICAL_MODEL_OBS_PER_PARAM = 1.5  # observations per fitted parameter before a model step: the fit averages the noise
CLASSICAL_MODEL_OBS_KNOWN_NOISE = 1.0  # ... and when the track's seed noise is measured (repeated runs): the
#   standard errors come from that noise, not the fit's residuals, so one observation per parameter will do
CLASSICAL_PROBES = True  # while the model step lacks a constant's curvature, the classical proposer probes it first
CLASSICAL_PROBE_STEP = 0.25  # a probe moves one constant a quarter of its space up or down (x2 or /2 for a float, one
#   doubling for a power of two): while the model lacks a constant's curvature, that constant is probed first
CLASSICAL_MODEL_RADIUS = 0.25  # trust region: each constant moves at most a quarter of its space (x/2..x*2 for a
#                                float, one doubling for a power of two), so a wrong model costs one run, not a recipe
CLASSICAL_MODEL_WIDTH = 0.5  # observations weigh exp(-|d|^2 / 2w^2), d in spans from the leader: the fit is local
CLASSICAL_MODEL_IRLS_ROUNDS = 4  # Huber reweighting rounds: points the additive surface cannot explain (LR and batch
#                                   moved together) weigh less; the residual sd on bench_search's bowl fell ~2x
CLASSICAL_MODEL_RIDGE = 1e-6  # shrinkage (x the total weight), only to keep the fit solvable: at 1e-3 the fit of the
#   bench_search bowl (exact for noise-free data) left residuals of 2-3 noise sds and no step passed its own z test
CLASSICAL_MODEL_MIN_GAIN_SDS = 1.0  # proposed when it promises >= 1 residual sd: a smaller gain cannot pass screening
CLASSICAL_MODEL_MOVE_Z = 2.0  # ... and each constant it moves promises a gain >= 2 of its standard errors: on the bowl
#   of tests/test_surrogate.py (scripts/bench_model_step.py: 200 fits of 40 observations) a constant with no effect
#   moved in 7.5% of steps (30% at z = 1, 2.5% at 3) and the steps took 97% of the gap on average (98% at 1, 96% at 3)
CLASSICAL_TRIES_PER_IDEA = 25  # TPE asks per wanted idea before giving up on finding an untried distinct point

# --- agent: runner, workspace, loop, confirmation ------------------------------------------------
RUN_POLL_S = 0.25  # how often a running experiment is checked (deadline, cancel, the prestart tick): a preempted
#                    run (PREEMPT_WITHIN) gives its GPU up within a quarter second (1 s was a quarter of a 4 s run)
PRESTART_AFTER_S = 3.0  # the next run's harness starts this far into a run: past the run's own setup (the two
# would compete for the cores), long before its end (getting ready takes ~2 s of imports on a loaded core)
RENEW_EVERY_S = 30.0  # lease renewal period while holding a claim; far below LEASE_S so two misses are harmless
AGENT_HEARTBEAT_S = 10.0  # registry heartbeat period; HEARTBEAT_TTL_S is 6x this before an agent shows dead
IDLE_POLL_S = 2.0  # sleep between empty claim attempts when no proposer can add work
HISTORY_KEEP_RESULTS = 5000  # results of its track an agent keeps decoded (10x what a proposal reads)
NOISE_SEEDS = 5  # seeded baseline runs per track: the first noise estimate (4 degrees of freedom) and the
#                  baseline's mean; with 3 (2 df) the t thresholds of a new track's first candidates are ~2x wider
BASELINE_RETRY_S = 5.0  # a failed baseline seed is replaced by a new seed after 5 s, 10 s, 20 s, ...: a
#                         contention timeout clears at once, a broken arena does not hammer the GPUs
BASELINE_RETRY_MAX_S = 600.0  # ... at most 10 minutes apart: a fixed host or driver is noticed soon enough
AHEAD_OF_BASELINE = True  # an agent with no baseline seed left to run explores the pristine code meanwhile (judged
#                           once the baseline lands) instead of idling: 2 agents and 5 seeds left one idle for a run
BASELINE_AWAIT_S = 30.0  # ... its result waits for the baseline this long past its own run time, then is discarded
BASELINE_AWAIT_POLL_S = 0.5
BASELINE_FAILURES_LOUD = 3  # from the 3rd failed seed on, each failure is an error and a board event
# The promotion rule (swarm/agent/noise.py), measured through the agent (scripts/bench_promotion.py, docs/agent.md):
# 3.1% of no-effect changes promoted (95% CI 2.2-4.4%), 75% of true 2-SD gains (72-78%, 1,000 of them), 1.82 runs
# spent per no-effect change. (First published as 2.1% / 87%: the script then gave every swarm the same baseline.)
CONFIRM_RUNS = 4  # runs behind a promotion: the candidate's own run plus 3 confirmations with other seeds
SCREEN_ALPHA = 0.3  # a no-effect run's chance of passing screening (t quantile): a real gain is rarely lost here
PROMOTE_ALPHA = 0.05  # the one-sided t test of a candidate's mean against the leader's, pooled seed noise
LEADER_REFRESH_RUNS = 4  # new-seed runs a promoted leader gets while it stands, each folded into its metric: a
#                          leader is the best-looking of many noisy candidates, so the mean of the runs that got it
#                          promoted is optimistic; 4 runs made after it was chosen halve that bias (scripts/
#                          bench_search.py, 16 agents, 300 s: the reported best 1.4 noise sds better than true -> 0.5)
LEADER_REFRESH_EVERY = 8  # ... one for each 8 explorations judged against it: a leader replaced soon costs nothing,
#                           one the search is stuck on (where the next small gains are judged against it) is
#                           measured better, at most 1 run in 9 spent on it
CARRY_OVER = True  # at a promotion, the replaced leader's other pending candidates go onto the new leader at once,
#                    each alone and all merged (scripts/bench_search.py: at 8-16 agents most real candidates were
#                    found on a leader that another candidate then replaced, and reached the leader one at a time)
OVERTAKE = True  # a candidate whose leader was replaced while it ran or was confirmed is judged against the new
#                  leader as it is when its runs so far clear screening against it, and promoted over it if it
#                  beats it (the replaced leader's edit is then posted onto it); before, it was always rebased:
#                  one more screening run, and at 8 agents the best candidates waited behind weaker earlier ones
URGENT_FIRST = True  # confirmations and leftover baseline seeds are run by the first GPU that is free, ahead of
#                      its prepared job, and never claimed into a slot (where they waited behind a whole run:
#                      candidate to promotion 10.1 s off, 5.9 s on at 8 agents with 4 s runs; measured in
#                      scripts/bench_search.py's move latency, docs/benchmarks.md "Fourth change")
PREEMPT_WITHIN = 0.1  # urgent work posted while an exploration is in the first 10% of its training budget stops it:
#                       the urgent job runs now and the exploration right after (its claim and its code kept). Runs
#                       end together after a round (all agents start at once, then a leader move), so a candidate's
#                       confirmations found every GPU just started and waited a whole run; now they cost at most a
#                       tenth of a run per preempted job (scripts/bench_search.py, 8 agents, 4 s runs: time to the
#                       target 21.2 -> 18.7 s over 24 seeds, 7% of runs stopped; 25% and 50% windows: promotions
#                       sooner, the target not, 18-24% of runs stopped). 0: never preempt
IDEAS_PER_CALL = 3  # hypotheses asked from a proposer when the board has none open for the track
LOOK_AROUND_S = 2.0  # an agent re-reads the registry (who else is on its track) at most this often per claim
AVOID_SCAN = 16  # queue entries a claim looks through for one its agent need not leave to others
IDEATE_TRIES = 3  # ideate+claim rounds when other agents took every new idea first (many agents, one leader)
PRIORITY_BASELINE = 1000  # baseline seed runs go first: nothing on a track can be judged before them
PRIORITY_CONFIRM = 900  # confirmations next: a candidate waiting on them holds up every later promotion
PRIORITY_REFRESH = 500  # a standing leader's new-seed runs: ahead of guesses (every later judgement rests on its
#                         metric), behind confirmations (not urgent: nothing waits on them)
PRIORITY_PORT = 100  # a win ported from another track is worth more than a fresh guess
OUTBOX_FILE = "outbox.jsonl"  # every result is written here before it is published; removed once the board has it
CODE_CACHE_ENTRIES = 32  # leaders' and candidates' code kept by patch hash: the recent ones are asked again and again
BOARD_BACKOFF_S = 0.5  # first wait after the board fails an iteration: a blip (failover, restart) is over in ~1 s
BOARD_BACKOFF_MAX_S = 15.0  # the wait doubles up to this: an agent notices a returned Redis within 15 s, and a
#                             down one costs a log line and a connect attempt per 15 s, not a spin
CLASSICAL_WEIGHT = 3  # default share 3:1 classical:LLM per key set (~25% LLM: the 10-30% that helped in 2603.24647)
ANTHROPIC_MODEL = "claude-sonnet-4-5"  # default model when only ANTHROPIC_API_KEY is set; --proposer overrides
OPENAI_MODEL = "gpt-5-mini"  # default model when only OPENAI_API_KEY is set; --proposer overrides

# --- CPU agents sharing a host (swarm/agent/join.py: take_cpu_share) ---------------------------------
CPU_AGENT_THREADS = 1  # a CPU agent's threads when it is the first on its host and nobody said --threads: its
#                        track is fixed for its life, so it leaves the other cores to agents started later. The
#                        CPU arena trains 27-31 steps in 10 s on 1 thread, 43-54 on 2 (docs/benchmarks.md): a
#                        lone agent gives up ~40% speed; two agents side by side do more runs than one on both
CPU_SLOTS_DIR = "/tmp/swarm-cpu-slots-{uid}"  # one place per user on a host, the same from a login shell, cron or
#                                               systemd (XDG_RUNTIME_DIR and TMPDIR differ between them)
CPU_SLOTS_MAX = 1024  # slot files looked at: far more CPU agents than any host runs, a bound on a junk-filled dir

# --- swarm launch: supervising the agents of a machine (swarm/agent/launch.py) --------------------------
LAUNCH_POLL_S = 0.5  # how often the launcher looks at its agents: a crash is seen within half a second
LAUNCH_RESTART_BACKOFF_S = 1.0  # wait before restarting an agent that crashed mid-run; doubles per failure at
#                                 start, so a crash loop never spins and a one-off crash costs the GPU ~1 s
LAUNCH_RESTART_BACKOFF_MAX_S = 60.0  # the doubling stops here: an agent waiting on Redis retries every minute
LAUNCH_FAST_FAIL_S = 60.0  # an agent that ends in error within a minute of starting failed at start (a join,
#                            torch import included, takes ~5-20 s); one that ran longer crashed mid-run
LAUNCH_GIVE_UP_AFTER = 5  # failures at start in a row before an agent is given up: waits of 2+4+8+16 s (~30 s)
#                           outlast a blip, and a configuration error fails the same way every time
LAUNCH_STOP_GRACE_S = 30.0  # agents get this long after SIGTERM to release their claims before SIGKILL: a few
#                             seconds are needed, and the systemd unit's TimeoutStopSec (90 s) is longer

# --- demo ------------------------------------------------------------------------------------------
DEMO_MINUTES = 8.0  # long enough for the baseline (3 seeds), a few rounds of ideas and a confirmed move on 2 cores
DEMO_AGENTS = 2  # one per core of a small machine; each gets half the cores (OMP_NUM_THREADS)
DEMO_BUDGET_S = 20.0  # a third of the cpu profile's 60 s: ~3x the experiments in the demo's minutes

# --- status and live view (swarm status [--watch]) -------------------------------------------------
STATUS_MAX_RESULTS = 200_000  # results `swarm status` reads on a board without the summary (as `swarm report` does)
WATCH_INTERVAL_S = 2.0  # redraw period: lively enough to watch, ~10 small reads per redraw leave Redis idle
WATCH_RESULTS_WINDOW = 2_000  # the live view's proposer lines cover the newest results: a redraw stays cheap
WATCH_TOP_OPEN = 5  # open hypotheses listed: what the next claims will take, not the whole queue
WATCH_RECENT_RESULTS = 8  # results listed: the last few minutes of a small swarm at a glance
WATCH_OPEN_SCAN = 500  # open hypotheses read to find the top ones by priority (a queue deeper than this is rare)
WATCH_EVENTS_SCAN = 2_000  # newest events searched for each running claim's start (claims are frequent events)
