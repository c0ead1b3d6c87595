# A data set the ranks do not divide: 13 training and 5 validation fields on 2 ranks, global
# batch 4 (the same failure as the reported CosmoFlow crash). Every run must finish with the
# same step count on both ranks and each validation field counted once (in the IoU, too):
#   padded (default)      7 fields per rank (one repeated), 4 steps per epoch, 14 trained;
#   data.drop_last_batch  6 per rank, 3 full steps, 12 trained;
#   data.staging=memory   the staged (fixed per rank) shards pad the same way.
include(${SRC}/common.cmake)
list(TRANSFORM SMALL REPLACE "data64/train$" "data64/uneven_train")
list(TRANSFORM SMALL REPLACE "data64/validation$" "data64/uneven_validation")
set(d ${WORK}/${NAME})
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d})
set(common training.epochs=2 data.batch_size=4 checkpoint.path= loss.class_weights=auto)

run_epochs(${NAME}_pad ${d}/pad.jsonl
           "4 steps per epoch on every rank \\(7 samples per rank in 4 batches, 1 sample repeated" 4 14 5 ${common})
run_epochs(${NAME}_drop ${d}/drop.jsonl
           "3 steps per epoch on every rank \\(6 samples per rank in 3 batches, 1 skipped per epoch" 3 12 5
           ${common} data.drop_last_batch=true)
run_epochs(${NAME}_staged ${d}/staged.jsonl "" 4 14 5 ${common} data.staging=memory)
