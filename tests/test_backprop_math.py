"""Backpropagation by hand: ``ft.grad`` against the textbook formulas for small
networks, computed in NumPy. Shapes are 2x2; ``delta`` is dL/dz for a
pre-activation ``z``; the loss is L = 1/2 sum (output - y)^2 throughout."""

import numpy as np

import functrans as ft
import functrans.numpy as fnp

W = np.array([[0.5, -1.2], [0.8, 0.3]])
W2 = np.array([[-0.7, 0.4], [1.1, 0.9]])
x = np.array([0.6, -1.5])
b = np.array([0.1, -0.4])
b2 = np.array([-0.2, 0.5])
y = np.array([0.3, 0.8])
X = np.array([[0.6, -0.2], [-1.5, 0.9]])  # two examples, one per column
Y = np.array([[0.3, -0.1], [0.8, 0.4]])


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def d_sigmoid(z):
    return sigmoid(z) * (1 - sigmoid(z))


def half_squared_error(out, target):
    return 0.5 * fnp.sum((out - target) ** 2)


def assert_close(got, expected):
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_linear_layer():
    # z = W x + b, L = 1/2 sum (z - y)^2: delta = z - y.
    loss = lambda W, x, b: half_squared_error(W @ x + b, y)
    gW, gx, gb = ft.grad(loss, argnums=(0, 1, 2))(W, x, b)
    delta = W @ x + b - y
    assert_close(gW, np.outer(delta, x))  # dL/dW = delta x^T
    assert_close(gx, W.T @ delta)  # dL/dx = W^T delta
    assert_close(gb, delta)  # dL/db = delta


def test_sigmoid_layer():
    # a = sigmoid(z): delta = dL/da * a (1 - a).
    loss = lambda W, x, b: half_squared_error(ft.nn.sigmoid(W @ x + b), y)
    gW, gx, gb = ft.grad(loss, argnums=(0, 1, 2))(W, x, b)
    a = sigmoid(W @ x + b)
    delta = (a - y) * a * (1 - a)
    assert_close(gW, np.outer(delta, x))
    assert_close(gx, W.T @ delta)
    assert_close(gb, delta)


def test_two_layer_network():
    # z1 = W x + b, a1 = sigmoid(z1), z2 = W2 a1 + b2, a2 = sigmoid(z2):
    # delta2 = (a2 - y) * sigmoid'(z2), delta1 = W2^T delta2 * sigmoid'(z1).
    def loss(W, b, W2, b2):
        a1 = ft.nn.sigmoid(W @ x + b)
        return half_squared_error(ft.nn.sigmoid(W2 @ a1 + b2), y)

    gW, gb, gW2, gb2 = ft.grad(loss, argnums=(0, 1, 2, 3))(W, b, W2, b2)
    z1 = W @ x + b
    a1 = sigmoid(z1)
    z2 = W2 @ a1 + b2
    delta2 = (sigmoid(z2) - y) * d_sigmoid(z2)
    delta1 = (W2.T @ delta2) * d_sigmoid(z1)
    assert_close(gW2, np.outer(delta2, a1))
    assert_close(gb2, delta2)
    assert_close(gW, np.outer(delta1, x))
    assert_close(gb, delta1)


def test_nested_linear_network_sharing_weights():
    # z1 = W x + b, z2 = W z1 + b: dL/dW = delta2 z1^T + delta1 x^T, dL/db = delta2 + delta1
    # with delta2 = z2 - y and delta1 = W^T delta2.
    loss = lambda W, b: half_squared_error(W @ (W @ x + b) + b, y)
    gW, gb = ft.grad(loss, argnums=(0, 1))(W, b)
    z1 = W @ x + b
    delta2 = W @ z1 + b - y
    delta1 = W.T @ delta2
    assert_close(gW, np.outer(delta2, z1) + np.outer(delta1, x))
    assert_close(gb, delta2 + delta1)


def test_nested_sigmoid_network_sharing_weights():
    # a1 = sigmoid(W x + b), a2 = sigmoid(W a1 + b): the second layer's input is a1, so
    # dL/dW = delta2 a1^T + delta1 x^T, dL/db = delta2 + delta1 with
    # delta2 = (a2 - y) * sigmoid'(z2) and delta1 = W^T delta2 * sigmoid'(z1).
    def loss(W, b):
        a1 = ft.nn.sigmoid(W @ x + b)
        return half_squared_error(ft.nn.sigmoid(W @ a1 + b), y)

    gW, gb = ft.grad(loss, argnums=(0, 1))(W, b)
    z1 = W @ x + b
    a1 = sigmoid(z1)
    z2 = W @ a1 + b
    delta2 = (sigmoid(z2) - y) * d_sigmoid(z2)
    delta1 = (W.T @ delta2) * d_sigmoid(z1)
    assert_close(gW, np.outer(delta2, a1) + np.outer(delta1, x))
    assert_close(gb, delta2 + delta1)


def batch_loss(W, b, X):
    # Z = W X + b[:, None]: the bias is broadcast over the columns (examples).
    return half_squared_error(W @ X + b[:, None], Y)


def test_batch_of_columns_with_a_broadcast_bias():
    gW, gb, gX = ft.grad(batch_loss, argnums=(0, 1, 2))(W, b, X)
    delta = W @ X + b[:, None] - Y  # one column of deltas per example
    assert_close(gW, delta @ X.T)  # sum over examples of delta_i x_i^T
    assert_close(gb, delta.sum(axis=1))  # the broadcast bias sums delta over columns
    assert_close(gX, W.T @ delta)


def test_vmap_over_columns_of_a_per_example_loss_gives_the_batch_gradient():
    def example_loss(W, b, x_i, y_i):
        return half_squared_error(W @ x_i + b, y_i)

    per_example = ft.vmap(example_loss, in_axes=(None, None, 1, 1))
    total = lambda W, b: fnp.sum(per_example(W, b, X, Y))
    gW, gb = ft.grad(total, argnums=(0, 1))(W, b)
    delta = W @ X + b[:, None] - Y
    assert_close(gW, delta @ X.T)
    assert_close(gb, delta.sum(axis=1))
    assert_close(total(W, b), batch_loss(W, b, X))

    # The per-example gradients, summed over the batch, are the same thing.
    gWs, gbs = ft.vmap(ft.grad(example_loss, argnums=(0, 1)), in_axes=(None, None, 1, 1))(
        W, b, X, Y
    )
    assert gWs.shape == (2, 2, 2) and gbs.shape == (2, 2)
    assert_close(gWs.sum(axis=0), delta @ X.T)
    assert_close(gbs.sum(axis=0), delta.sum(axis=1))
    for i in range(2):
        assert_close(gWs[i], np.outer(delta[:, i], X[:, i]))
