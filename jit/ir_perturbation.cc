#include "jit/ir_perturbation.h"

#include <llvm/IR/InstrTypes.h>
#include <llvm/IR/Instructions.h>
#include <llvm/IR/Module.h>

namespace kiln::jit {

bool PerturbFirstFloatAdd(llvm::Module& module) {
  for (llvm::Function& function : module) {
    for (llvm::BasicBlock& block : function) {
      for (llvm::Instruction& inst : block) {
        if (inst.getOpcode() != llvm::Instruction::FAdd) continue;
        llvm::BinaryOperator* sub = llvm::BinaryOperator::Create(llvm::Instruction::FSub, inst.getOperand(0),
                                                                 inst.getOperand(1), inst.getName(), &inst);
        // Keep the fast-math flags so that the optimiser treats the two alike.
        sub->copyIRFlags(&inst);
        inst.replaceAllUsesWith(sub);
        inst.eraseFromParent();
        return true;
      }
    }
  }
  return false;
}

}  // namespace kiln::jit
