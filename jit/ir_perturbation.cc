#include "jit/ir_perturbation.h"

#include <llvm/IR/InstrTypes.h>
#include <llvm/IR/Instructions.h>
#include <llvm/IR/Module.h>

#include <vector>

namespace kiln::jit {

int PerturbFloatAdds(llvm::Module& module) {
  std::vector<llvm::Instruction*> adds;
  for (llvm::Function& function : module) {
    for (llvm::BasicBlock& block : function) {
      for (llvm::Instruction& inst : block) {
        if (inst.getOpcode() == llvm::Instruction::FAdd) adds.push_back(&inst);
      }
    }
  }
  for (llvm::Instruction* add : adds) {
    llvm::BinaryOperator* sub = llvm::BinaryOperator::Create(llvm::Instruction::FSub, add->getOperand(0),
                                                             add->getOperand(1), add->getName(), add);
    // Keep the fast-math flags so that the optimiser treats the two alike.
    sub->copyIRFlags(add);
    add->replaceAllUsesWith(sub);
    add->eraseFromParent();
  }
  return static_cast<int>(adds.size());
}

}  // namespace kiln::jit
