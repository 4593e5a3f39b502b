# Shared launcher settings for scripts/*.sh. Override any variable from the environment.
#
# Global batch = NUM_GPUS x NNODES x PER_DEVICE_BATCH x GRAD_ACC. The official recipe uses 256 (stage 1)
# and 128 (stage 2) on 8 GPUs; when you change the GPU count, change GRAD_ACC (or the per-device batch)
# so the product stays the same -- the learning rates assume that global batch.
#
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and MASTER_PORT on every node (torchrun), or use
# `deepspeed --hostfile hostfile` by setting LAUNCHER=deepspeed.
NUM_GPUS=${NUM_GPUS:-8}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
LAUNCHER=${LAUNCHER:-torchrun}
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

launch() {
    if [ "$LAUNCHER" = "deepspeed" ]; then
        deepspeed ${HOSTFILE:+--hostfile "$HOSTFILE"} --num_gpus "$NUM_GPUS" --master_port "$MASTER_PORT" \
            -m piip_llava.train "$@"
    else
        torchrun --nproc_per_node "$NUM_GPUS" --nnodes "$NNODES" --node_rank "$NODE_RANK" \
            --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" -m piip_llava.train "$@"
    fi
}

global_batch_check() {  # global_batch_check TARGET PER_DEVICE GRAD_ACC
    local actual=$(( NUM_GPUS * NNODES * $2 * $3 ))
    if [ "$actual" -ne "$1" ]; then
        echo "note: global batch is $actual (recipe: $1); adjust GRAD_ACC or the per-device batch to match." >&2
    fi
}
