import pytest
import torch

from app.ml.model import MNISTNet, build_model, count_parameters


def test_product_network_has_21840_parameters():
    model = MNISTNet()
    assert count_parameters(model) == 21840
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes["conv1.weight"] == (10, 1, 5, 5)
    assert shapes["conv2.weight"] == (20, 10, 5, 5)
    assert shapes["fc1.weight"] == (50, 320)
    assert shapes["fc2.weight"] == (10, 50)


def test_forward_gives_ten_logits_per_image():
    model = build_model("mnist_cnn").eval()
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_the_stronger_network_is_offered_beside_it():
    model = build_model("wide").eval()
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert count_parameters(model) > count_parameters(MNISTNet())


def test_unknown_architecture_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        build_model("resnet")
