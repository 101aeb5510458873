"""On-the-fly scene synthesis for pretraining: RIR-bank scenes and device-side mixing."""
