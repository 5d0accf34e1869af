"""Explanation texts of the "One training step" page (Markdown, our own words, the seed documents' notation).
Plain strings: pages pass them to st.markdown; user text never goes into them."""

INTRO = r"""
*"If we have 10 examples, does each example go through the encoder and the decoder?"* — yes. Here is **one**
training pair on its way through one training step of the current model, in the order the computer does it:
the encoder reads x_1 … x_S, the decoder is fed the true previous tokens and predicts each y_t, the cross-entropy
compares its predictions with the targets, backpropagation sends the error back through every timestep, and the
optimizer moves the weights a little. Training repeats exactly this for every example (in mini-batches, which
average the loss over the batch), epoch after epoch.
"""

CAVEAT = r"""
Computed on a **copy** of the current model with the training code itself (tested to give the same loss and the
same new weights as a real training step on this example). Differences from a step inside a training run: the
batch is this one example, the optimizer starts fresh (a saved model keeps no optimizer state), dropout is off and
the decoder is always fed the true previous token, all in 32-bit floats.
"""

ENCODER = r"""
Each timestep t reads the embedding of x_t and the previous state: h_t = f(x_t, h_{t-1}). One row per timestep;
the number of rows is the number of source tokens, the number of columns the number of hidden units.
The context c = q(h_1, …, h_S) is what the decoder starts from (s_0).
"""

DECODER = r"""
**Teacher forcing**: at step t the decoder is fed the *true* previous token y_{t-1} (starting from ⟨sos⟩), not its
own guess, and computes s_t = g(y_{t-1}, c_t, s_{t-1}) and the distribution p_t = softmax(W_out o_t + b_out) over the
next token. All T steps are computed in one pass. Bright cells are likely tokens; the ring is the right answer y_t.
"""

LOSS = r"""
The loss of one target token is −log p_t(y_t): 0 when the model gave the right token probability 1, log V for a
uniform guess over V tokens, large when it was confidently wrong. The loss of the example is the mean over its
target tokens (⟨eos⟩ included: the model must also learn *when to stop*).
"""

BACKWARD = r"""
**Backpropagation through time.** The gradient of the loss flows from every p_t back into s_t, from s_t back to
s_{t-1} … s_0 = the context, and from there back through the encoder, h_S, h_{S-1}, … h_1. The bars are the size
‖∂loss/∂s_t‖ and ‖∂loss/∂h_t‖ of the *whole* derivative at each state (through every later timestep). Where they
shrink towards the first timesteps, the early tokens barely change what the model learns: the **vanishing
gradient**. Attention gives every h_t a short path to the loss, so its bars stay larger.
"""

GROUPS = r"""
The same gradient, summed up per group of weights: ‖∂loss/∂θ‖ for the embeddings, the recurrent cells, the bridge,
attention and the output layer. Before the step, the global norm is clipped to at most the clip value (if it is
larger, every gradient is scaled down by the same factor).
"""

OPTIMIZER = {
    "adam": r"""
**Adam** keeps running averages of each weight's gradient m and of its square v, and moves each weight by
lr · m̂ / (√v̂ + ε). On its **first** step (a fresh optimizer, as here) m̂/√v̂ = g/|g| = ±1: *every* weight with a
nonzero gradient moves by about the learning rate, however small its gradient. That is why the groups move by
about lr × √(number of weights that got a gradient), not in proportion to their gradient.
""",
    "rmsprop": r"""
**RMSprop** divides each gradient by the root of a running average of its square: θ ← θ − lr · g / (√v + ε), with
v = 0.01 g² on a fresh optimizer, so the first step moves each weight by up to lr · 10: large, whatever the
gradient's size. In a long run v settles and the steps become adaptive.
""",
    "sgd": r"""
**SGD** (plain, no momentum): θ ← θ − lr · g. Each group moves in exact proportion to its (clipped) gradient:
the bars on the right are the bars above times the learning rate.
""",
}

AFTER = r"""
The step was computed to lower the loss of this one example (★), and it changes the loss on the others too, for
better or worse: they share every weight. Training averages many such steps over many examples, so what helps
most examples wins.
"""

WENT_UP = r"""
**Here the loss of this example went up.** A step follows the gradient only for a *small* move; this one was too
large. With a fresh Adam (or RMSprop) every weight moves by about the learning rate (RMSprop: up to 10×), and a
model that already fits the example well is knocked off its minimum. Try SGD, or a smaller learning rate: the loss
then goes down. (Inside a training run Adam's running averages make its steps much smaller than this first one.)
"""
