# A data set the ranks do not divide (the reported crash: 33 volumes on 2 ranks, rank 0 with
# 5 batches and rank 1 with 4, died in MPI_Allreduce with MPI_ERR_TRUNCATE): 33 training and
# 7 validation volumes on 2 ranks, global batch 8. Every run must finish, with the same step
# count on both ranks and each validation volume counted once:
#   padded (default)      17 volumes per rank (one repeated), 5 steps per epoch, 34 trained;
#   data.drop_last_batch  16 per rank, 4 full steps, 32 trained;
#   data.staging=memory   the staged (fixed per rank) shards pad the same way.
include(${SRC}/common.cmake)
list(TRANSFORM SMALL REPLACE "data16/train$" "data16/uneven_train")
list(TRANSFORM SMALL REPLACE "data16/validation$" "data16/uneven_validation")
set(d ${WORK}/${NAME})
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d})
set(common training.epochs=2 data.batch_size=8 checkpoint.path=)

run_epochs(${NAME}_pad ${d}/pad.jsonl
           "5 steps per epoch on every rank \\(17 samples per rank in 5 batches, 1 sample repeated" 5 34 7 ${common})
run_epochs(${NAME}_drop ${d}/drop.jsonl
           "4 steps per epoch on every rank \\(16 samples per rank in 4 batches, 1 skipped per epoch" 4 32 7
           ${common} data.drop_last_batch=true)
run_epochs(${NAME}_staged ${d}/staged.jsonl "" 5 34 7 ${common} data.staging=memory)
