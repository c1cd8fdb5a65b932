"""e-prop (Bellec, Scherr, Subramoney, Hajek, Salaj, Legenstein & Maass 2020, Nat. Commun. 11:3625):
a recurrent layer of LIF or ALIF cells and a leaky readout, trained online by eligibility traces
times a learning signal broadcast from the output error (docs/models/eprop.md).

network.py: the Brian2 network; oracle.py: its numpy oracle, synapse by synapse; numpy_form.py:
the same learning batched in numpy.
"""
