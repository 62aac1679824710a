"""The local rehearsal stack: real nginx, the stage emulator, DNS and SQS on moto, on loopback."""
