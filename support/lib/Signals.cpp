//===- Signals.cpp --------------------------------------------------------===//
#include "mixtape/support/Signals.h"

#include <csignal>
#include <initializer_list>

static volatile std::sig_atomic_t Received = 0;

static void record(int signal) { Received = signal; }

void mixtape::catchStopSignals() {
  struct sigaction action = {};
  action.sa_handler = record;
  action.sa_flags = SA_RESTART | SA_RESETHAND; // the second one stops the process at once
  sigemptyset(&action.sa_mask);
  for (int signal : {SIGINT, SIGTERM, SIGUSR1})
    ::sigaction(signal, &action, nullptr);
}

int mixtape::stopSignal() { return Received; }

const char *mixtape::signalName(int signal) {
  switch (signal) {
  case SIGINT:
    return "SIGINT";
  case SIGTERM:
    return "SIGTERM";
  case SIGUSR1:
    return "SIGUSR1";
  default:
    return "a signal";
  }
}
