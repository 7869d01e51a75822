// Value kinds (graph::ValueKind): which values are sequences or optionals.
//
// Why a pass of its own: ONNX's shape inference types most intermediate
// values, but it leaves some untyped (a body's formal inputs, values it gives
// up on), and kiln's shape propagation knows tensors only. Every later stage
// that must treat a sequence differently (the partitioner keeping it out of
// compiled regions, the memory planner, `kiln info`) reads Value::kind, so
// the op semantics that decide it live in one place.
#pragma once

#include <string>

#include "graph/graph.h"
#include "kiln/status.h"

namespace kiln::graph {

// Sets the kind, and where the op decides it the dtype, of the outputs of
// the sequence and optional ops (SequenceEmpty, SequenceConstruct,
// SequenceInsert, SequenceErase, SequenceAt, SequenceLength,
// SplitToSequence, ConcatFromSequence, Optional, OptionalHasElement,
// OptionalGetElement), and passes kinds through Identity, If and Loop
// (into a body's outer-scope values and a Loop body's untyped loop-carried
// inputs, out of its outputs), recursing into bodies. Only adds knowledge;
// never fails (a cycle leaves the graph as it is, for Validate to report).
void PropagateValueKinds(Graph& graph);

// Unsupported, naming the node and the value, when an op kiln runs on
// tensors reads a sequence or optional; sub-graphs are checked too. The
// runtime relies on it: only the ops listed above, Identity, If and Loop
// ever see a run-time sequence.
Status CheckValueKindUses(const Graph& graph);

// How kiln writes a type in an attribute (ONNX's TYPE_PROTO attributes,
// such as Optional's `type`, which graph::Attribute holds as a string):
// "float32", "seq(float32)", "optional(float32)", "optional(seq(float32))".
std::string TypeNotation(ValueKind kind, DType dtype);
// The inverse of TypeNotation; false for anything else.
bool ParseTypeNotation(const std::string& notation, ValueKind& kind, DType& dtype);

// True for the ops that produce or consume sequences or optionals (the
// list above, without Identity, If and Loop).
bool IsSequenceOrOptionalOp(const Node& node);

}  // namespace kiln::graph
