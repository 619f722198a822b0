#!/usr/bin/env bash
#SBATCH --job-name=dask-worker
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=24
#SBATCH --mem=54000M
#SBATCH --time=01:00:00
#SBATCH --partition=all
export DASK_DISTRIBUTED__WORKER__DAEMON=False
export DASK_DISTRIBUTED__SCHEDULER__UNKNOWN_TASK_DURATION=1m
export DASK_DISTRIBUTED__SCHEDULER__TARGET_DURATION=10m
export PYTHON_CPU_COUNT=$SLURM_JOB_CPUS_PER_NODE
dask worker \
--nthreads 2 \
--name worker-$SLURM_JOB_ID \
tcp://<scheduler_ip>:<scheduler_port>
