//===- DataCommand.cpp - `mixtape data` ----------------------------------===//
#include "Commands.h"
