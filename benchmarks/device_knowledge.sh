#!/usr/bin/env bash
# The knowledge benchmark on the lent GPU machine (see ../shared/device/README.md).
#
# Here, once:   bash ../shared/device/prepare.sh   (PIECE_MB=58: the GGUF in 5 pieces, wheels)
#               .venv/bin/python benchmarks/knowledge.py prepare
#               bash benchmarks/device_knowledge.sh freeze     # the committed code, into .bench/code
# Then device `run` calls, back to back (the machine stays warm 30 s between them):
#   carry [.device/on-device.sh, .device/gguf/p0]   command: bash .device/on-device.sh piece p0
#   ... the same for p1, p2, p3 ...
#   carry [.device/on-device.sh, .device/gguf/p4, .device/whl, .bench]
#        command: bash .bench/code/benchmarks/device_knowledge.sh run "VARIANTS" JOBS MINUTES
#   (again with carry [.device/on-device.sh, .bench] and the same command, at once, to continue what is
#   left: a task the previous call's limit cut short resumes from its last checkpoint while the machine
#   is still warm; MINUTES can then run to the end of the call)
#   JOBS: at most 8 with the default recipe: 13 processes ran one (oasysmobile) out of the H200's
#   memory and all of them slower (2026-12-01). With 8 and NO_CURVES=1, three calls of ~9.7 min
#   finished two variants on all 13 contracts (26 tasks: 7, 12, then the last 7 in 104 s, resumed;
#   the sixth run 5, 9, then 12 in 320 s: a whole session's device time for 26 tasks). With curves,
#   default on 13 + one variant on 4 (17 tasks) took two calls (3, then 14 in 567 s; the seventh
#   run), and 4 subset tasks alone with NO_CURVES=1 one call of 427 s.
#   MINUTES bounds when a task may still *start*, resumed ones included: a continuation call with MINUTES
#   of 1 resumed the 8 cut-short tasks and left the other 6 unstarted (the eighth run lost its 13th
#   contract so); give it 3-5 unless nothing new should start. Timings of the eighth run (26 tasks, 8 jobs,
#   NO_CURVES=1, the mended generator: more Q&A): 2, then 10, then 8 resumed in 266 s; 4 more in 207 s.
#   The ninth run ("default,recite": recitals lengthen every answer): 5, 7, then 9 tasks in three calls of
#   ~9.5 min, 5 never started; a variant that lengthens answering wants a subset (@contract+contract).
#   The tenth ("default,phased,recite_record@4 contracts", 30 tasks): 5, 8, then 9 in calls of 585, 580 and
#   480 s; 8 never started (recite_record reached one contract). The eleventh (recite_read alone, 13 tasks): 2, then 10 in
#   calls of 584 and 580 s (buffalowildwings cut short in both); then "default@legacy+duos+hemispherx" 1 3 trained
#   hemispherx alone in 5.3 minutes and started nothing else (MINUTES 3): a contract alone needs MINUTES ≥ 5 to
#   let a second one start, and a call of ~7 minutes holds two of the smaller ones at most.
#   recite_both answers every closed-book question twice (and reads on), in each checkpoint's evaluation too:
#   the twelfth run (recite_both alone, 13 tasks): 1, then 9, then 2 in calls of 584, 579 and 524 s (MINUTES 9, 5,
#   8; median 7.65 minutes a contract with 8 sharing); buffalowildwings never finished. recite_both_all trains
#   more rows still: give it three full calls, or limit it (@contract+contract) to leave room for a second variant.
#   The fourteenth ("recite_both_all_choices@" the 12 others, buffalowildwings left out): 1, then 10 in calls of 583
#   and 575 s (MINUTES 9, 5), then the sample alone resumed in 127 s ("…@quillmere" 1 2); 25 of 30 minutes. Since
#   then train.answer_from (0.5) skips answering in the first half of the steps: ~0.7 (default) to ~1.8 (recite)
#   minutes less a contract, from the stored evaluation times. The fifteenth (quoted and recite_both_all_quoted
#   on the same 12, 24 tasks): 2, then 9, then 11 in calls of 584, 579 and 409 s (MINUTES 9, 5, 4), 28.5 of 30
#   minutes; tcpipelines started in neither. The first call spends ~4 minutes on setup and conversion before
#   any task finishes, so a 24-task run needs all three. Fully fine-tuned variants (full_lr_*) keep ~9.7 GB of
#   checkpoints a contract until the task ends (8 x 1.1 GB, train.keep_optimizer_state last; a finished task's
#   checkpoints are deleted once its row is written): run them with JOBS 5 or fewer on the 64 GB disk (the sixteenth run, full_lr_5e-5 and full_lr_1e-4 on
#   12 contracts, 5 jobs: 5, then 10 tasks in calls of 582 and 494 s (MINUTES 9, 5); the machine was released while
#   this side paused, so the last 9 (the smallest contracts) ran after the pieces again, in 352 s). The tracked tree must leave room for a
#   58 MB piece under the 64 MiB carry: the raw results are gzipped, and freeze leaves them out.
#   The twenty-second (teach_held_out and teach_held_out_replay_4 on the same 12, 24 tasks; teaching and a second
#   asking of the questions add ~1 minute a task): 5, then 11 in calls of 584 and 543 s (MINUTES 7, 4), then with 4
#   jobs the 4 smallest of one variant in 218 s and 2 of the other's in 188 s: 24 tasks do not fit one session.
#   The twenty-third (default on the 12 with ALSO_TEACH=replay_rules,passes_2: ~2.5 minutes more a task): 2, then
#   10 in calls of 584 and 446 s (MINUTES 7, 5); a contract alone (waste2energy, 1 job) 290 s; blackbox alone
#   did not finish in 215 s (nothing written). Two teachings beside one training cost less than a second variant.
#   The twenty-fourth (the same, ALSO_TEACH=question_dropout,passes_6): 2, then 10 in calls of 585 and 473 s
#   (MINUTES 7, 5), after one refused start (91 s) and the pieces; then hemispherx alone (1 job) in 357 s.
#   The twenty-fifth (recite_both_all on the same 12, 6 teaching passes): none, then 11 in calls of 584 and 581 s
#   (MINUTES 7, 5), then the sample alone resumed in 144 s ("…@quillmere" 1 2); 25.5 of 30 minutes with a
#   refused start and the pieces. A recite variant and a second one do not fit one session.
#   The twenty-sixth (recall, the default answering a second way, on the same 12): 4, then 8 in calls of 584 and
#   228 s (MINUTES 7, 5); after the machine was released, the pieces again (~120 s, the first call's start included)
#   and recall_quotes on the 7 smallest (7 jobs, MINUTES 3) in one call of 491 s. A default-recipe variant on the
#   12 fits one session with ~10 minutes to spare; keep the machine warm (a call within 30 s) to spare the pieces.
#   The twenty-seventh ("read_definitions@$S": the default with definitions read on too; eval keeps each answer as
#   asked beside the one read on): 2, then 10 in calls of 584 and 438 s (MINUTES 7, 5), after one refused start (91 s)
#   and the pieces; then "default@duos+waste2energy" 2 1 (the two median contracts, 2 sharing) in 383 s: 1,646 s.
#   read_quotes in checkpoint selection doubled its evaluating at 8 sharing (~2.2 minutes a median contract).
#   The twenty-eighth (code 99c95d0, model.cudnn_attention off, the same 12): after one refused start (91 s) and the
#   pieces, `profile waste2energy…` alone (349 s with setup: a 4.64-minute training), pieces again (the machine was
#   released while this side changed the code), then none, then 10 in calls of 578 and 475 s (MINUTES 7, 5): oasys and
#   quillmere never finished, the device time spent. Training without cuDNN was 1.46x slower with 8 sharing.
#   The twenty-ninth (code 65efc18: one micro-batch of 32 a step; the same 12): pieces, `profile waste2energy…` alone
#   (253 s with setup: 3.46 minutes, peak 16.6 GiB allocated), then 7 finished in one call of 526 s (MINUTES 7) while
#   5 ran out of memory with 8 sharing (a micro-batch of 32 holds up to ~4,400 labelled tokens: 4.3 GiB of fp32
#   logits), and those 5 in one call of 323 s (MINUTES 5, 5 sharing; 2 resumed). 1,340 s of device time in all.
#   Then VARIANT=loss_chunk_1024 `profile waste2energy… 40` stopped at its first step (bf16 hidden-state dtype, mended
#   in train/loss.py since) with the device time spent.
#   Next: VARIANT=loss_chunk_1024 `profile waste2energy…` (its peak memory and step time alone); if the peak falls
#   to ~11 GiB at the same step time, put train.loss_chunk_tokens 1024 into knowledge.py's GPU settings so 8 fit.
#   Then buffalowildwings (458 chunks, three times the others; never trained since the fourteenth run), alone:
#   "default@buffalowildwings" 1 9, then the same at once with MINUTES 1 to finish it resumed (a fresh machine's
#   /tmp/knowledge is empty; on a warm one a task already there is skipped). A profile and a run do not both fit
#   one session with a code change between them: each start costs the pieces again.
#   `profile CONTRACT [MAX_STEPS]` (carry as `run`; VARIANT=<a knowledge.py variant>, default the default): one contract alone through benchmarks/train_profile.py, its
#   summary.json and operator tables under $OUT/profile.
#   ALSO_TEACH=replay_rules,passes_2 teaches each selected checkpoint those other ways too (knowledge.py TEACHINGS),
#   ~1-2 minutes a task for each.
#   NO_CURVES=1 skips answering with every checkpoint (the selection-rule table, with retrieval and
#   closed-book since the sixth session: about twice the ~1.5 min a contract of retrieval alone, untimed).
# Back here: tar xzf knowledge.tgz; .venv/bin/python benchmarks/knowledge.py report --results knowledge
#   (.venv/bin/python benchmarks/knowledge.py keep --results knowledge --out benchmarks/results/<name>.json.gz
#   stores the rows for the record)
#   (the last call's knowledge.tgz holds every call's results: /tmp/knowledge stays while the machine is warm)
set -euo pipefail
case "${1:-}" in
  freeze)
    rm -rf .bench/code && mkdir -p .bench/code
    # not benchmarks/results: the device reads none of it, and every carry counts against its 64 MiB
    git archive HEAD docfinetune benchmarks ':(exclude)benchmarks/results' pipelines pyproject.toml | tar -x -C .bench/code
    git rev-parse HEAD > .bench/code/COMMIT
    echo "froze $(cat .bench/code/COMMIT) into .bench/code" ;;
  run|profile)
    if [ ! -f /tmp/gemma-3-270m-q4_k_m.gguf ]; then
      bash .device/on-device.sh install >/dev/null
      bash .device/on-device.sh piece p4 >/dev/null
      bash .device/on-device.sh assemble
    fi
    export PYTHONPATH=/tmp/site:$PWD/.bench/code PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
    export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True  # many processes share each GPU
    if [ "$1" = profile ]; then  # one contract alone: where its minutes go (train_profile.py)
      timeout "${TIMEOUT_S:-555}" python3 .bench/code/benchmarks/train_profile.py --prepared .bench/knowledge \
        --contract "$2" --base-model /tmp/gemma-3-270m-q4_k_m.gguf --out "$OUT/profile" ${3:+--max-steps "$3"} ${VARIANT:+--variant "$VARIANT"} \
        2>&1 | grep -v -i "warn" | tail -120 || true
      exit 0
    fi
    variants=$2 jobs=$3 minutes=$4
    gpus=$(python3 -c 'import torch; print(torch.cuda.device_count())')
    echo "code $(cat .bench/code/COMMIT); $gpus GPU(s)"
    if [ -n "${LIGER_CHECK:-}" ]; then  # beside the benchmark, on GPU 0
      (CUDA_VISIBLE_DEVICES=0 python3 .bench/code/benchmarks/liger_generation_check.py \
         --base-model /tmp/gemma-3-270m-q4_k_m.gguf > "$OUT/liger_check.json" 2> "$OUT/liger_check.err" &)
    fi
    # Stop starting tasks after $minutes; the call's limit is 10 minutes, so let running ones end.
    timeout "${TIMEOUT_S:-555}" python3 .bench/code/benchmarks/knowledge.py run --out .bench/knowledge \
      --base-model /tmp/gemma-3-270m-q4_k_m.gguf --results /tmp/knowledge --variants "$variants" \
      --jobs "$jobs" --gpus "$gpus" --budget-minutes "$minutes" ${NO_CURVES:+--no-curves} ${ALSO_TEACH:+--also-teach "$ALSO_TEACH"} 2>&1 | grep -v -i "warn" | tee "$OUT/run.log" | tail -80 || true
    nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv || true
    tar czf "$OUT/knowledge.tgz" -C /tmp knowledge
    ls /tmp/knowledge/* | head -100 ;;
  *) echo "usage: device_knowledge.sh freeze | run VARIANTS JOBS MINUTES | profile CONTRACT [MAX_STEPS]" >&2; exit 2 ;;
esac
