#!/usr/bin/env bash
#SBATCH --job-name=dask-worker
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=72
#SBATCH --mem=54000M
#SBATCH --time=01:00:00
#SBATCH --partition=all
export SEAMLESS_DASK_QUEUE_EXCLUSIVE=0
export SEAMLESS_WORKER_TRANSFORMATION_THROTTLE=3
export DASK_DISTRIBUTED__WORKER__DAEMON=False
export DASK_DISTRIBUTED__SCHEDULER__UNKNOWN_TASK_DURATION=1m
export DASK_DISTRIBUTED__SCHEDULER__TARGET_DURATION=10m
export DASK_DISTRIBUTED__WORKER__LIFETIME__DURATION=55m
export DASK_DISTRIBUTED__WORKER__LIFETIME__STAGGER=4m
export PYTHON_CPU_COUNT=$SLURM_JOB_CPUS_PER_NODE
dask worker \
--nthreads 72 \
--local-directory /tmp \
--name worker-$SLURM_JOB_ID \
tcp://<scheduler_ip>:<scheduler_port>
